"""The audit log's commands: `audit.verify` and `audit.prove` (admin socket only), and a
caller's own `receipts.get` (sandbox socket)."""

from __future__ import annotations

import base64

from guardian.handlers import CallContext, principal_of
from guardian.tlog import note, receipts
from guardian.tlog.checkpoints import read_history
from guardian.tlog.proofs import MissingLeaves
from guardian.tlog.verify import Target, verify
from protocol.contract import (
    AuditConsistencyParams,
    AuditProveParams,
    AuditVerifyParams,
    ReceiptGetParams,
)
from protocol.contract_results import (
    AuditConsistencyResult,
    AuditProofResult,
    AuditVerifyResult,
    ReceiptResult,
)
from protocol.errors import InvalidParams, NotFound


async def audit_verify(ctx: CallContext, params: AuditVerifyParams) -> AuditVerifyResult:
    """Every leaf and row, against every checkpoint this guardian exported and the one
    given (which must carry this log's signature)."""
    checkpoints = ctx.services.checkpoints
    targets = [
        Target(int(line["size"]), base64.b64decode(line["root"]))
        for line in read_history(checkpoints.directory)
    ]
    if isinstance(params.checkpoint, str):
        try:
            given = note.open_checkpoint(params.checkpoint, checkpoints.key.vkey)
        except note.NoteError as exc:
            raise InvalidParams(f"the checkpoint: {exc}") from None
        if given.origin != checkpoints.key.name:
            raise InvalidParams(f"the checkpoint is of another log ({given.origin})")
        targets.append(Target(given.size, given.root))
    report = await verify(ctx.services.storage, targets)
    answer = report.to_map()
    return AuditVerifyResult(**answer)


async def _index_of(ctx: CallContext, ident: str) -> int:
    storage = ctx.services.storage
    if ident.isdigit():
        return int(ident)
    kind, ref = ("audit", ident[6:]) if ident.startswith("audit:") else ("usage", ident)
    row = await storage.tlog_find(kind, ref)
    if row is None:
        raise NotFound(f"no leaf records {ident!r} (not yet written, or older than the log)")
    return int(row["idx"])


async def audit_prove(ctx: CallContext, params: AuditProveParams) -> AuditProofResult:
    """The leaf, its inclusion proof, and the signed checkpoint the proof ends in (signed
    now when the last one does not cover the leaf yet)."""
    index = await _index_of(ctx, params.id)
    checkpoints = ctx.services.checkpoints
    signed = checkpoints.last
    if signed.size <= index:
        signed = await checkpoints.checkpoint()
    if signed.size <= index:
        raise NotFound(
            f"no signed checkpoint covers leaf {index}: {checkpoints.refused or 'not written yet'}"
        )
    leaf = await ctx.services.storage.tlog_leaves(index, index + 1)
    if not leaf:
        raise NotFound("the log's table does not hold every leaf: run `audit verify`")
    text = str(leaf[0]["leaf"])
    try:
        proof = await checkpoints.proofs.inclusion(index, signed.size)
    except MissingLeaves:
        raise NotFound("the log's table does not hold every leaf: run `audit verify`") from None
    return AuditProofResult(
        index=index,
        size=signed.size,
        leaf=text,
        proof=[base64.b64encode(p).decode() for p in proof],
        checkpoint=signed.note,
        verifier_key=checkpoints.key.vkey,
    )


async def receipts_get(ctx: CallContext, params: ReceiptGetParams) -> ReceiptResult:
    """The caller's own receipt: its ledger row re-signed (the body the answer carried,
    signed as RFC 8032 has it), its leaf, and a proof when the last checkpoint covers the
    leaf. Another caller's receipt is not found, exactly as one that does not exist."""
    principal = await principal_of(ctx, params)
    storage = ctx.services.storage
    row = await storage.fetchrow(
        storage.q("SELECT * FROM {s}usage WHERE key = ? OR key = ?"),
        params.id,
        f"reservation:{params.id}",
    )
    mine = row is not None and (
        row["user_id"] == principal.user_id
        if principal.user_id
        else (row["user_id"] == "" and row["principal"] == principal.name)
    )
    if row is None or not mine:
        raise NotFound(
            f"no receipt {params.id!r} of yours (a call's row is written within a second)"
        )
    checkpoints = ctx.services.checkpoints
    leaf = await storage.tlog_find("usage", str(row["key"]))
    index = int(leaf["idx"]) if leaf is not None else None
    proof = None
    if index is not None and checkpoints.last.size > index:
        proof = await audit_prove(ctx, AuditProveParams(id=str(index)))
    return ReceiptResult(
        receipt_id=params.id,
        receipt=receipts.sign(checkpoints.key, row),
        verifier_key=checkpoints.key.vkey,
        leaf_index=index,
        proof=proof,
    )


async def audit_consistency(
    ctx: CallContext, params: AuditConsistencyParams
) -> AuditConsistencyResult:
    """The latest checkpoint (signed now if leaves were added since) and the proof that its
    tree extends the older one of `size` leaves."""
    signed = await ctx.services.checkpoints.checkpoint()
    if params.size > signed.size:
        raise NotFound(
            f"the latest signed checkpoint has {signed.size} leaves, fewer than {params.size}"
        )
    try:
        proof = await ctx.services.checkpoints.proofs.consistency(params.size, signed.size)
    except MissingLeaves:
        raise NotFound("the log's table does not hold every leaf: run `audit verify`") from None
    return AuditConsistencyResult(
        old_size=params.size,
        size=signed.size,
        proof=[base64.b64encode(p).decode() for p in proof],
        checkpoint=signed.note,
        verifier_key=ctx.services.checkpoints.key.vkey,
    )
