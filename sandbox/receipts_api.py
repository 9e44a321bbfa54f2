"""`GET /v1/receipts/{id}`: one of the caller's own receipts (docs/AUDIT.md).

The sandbox passes the caller's credential and the id; the guardian resolves whose receipt
it is, re-signs it from the stored ledger row, and adds its leaf in the audit log and an
inclusion proof once a signed checkpoint covers it. Another caller's receipt answers 404,
as one that does not exist.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from protocol.contract_results import to_wire
from protocol.errors import NotFound, RPCError
from sandbox.caller import caller_of
from sandbox.guardian_link import GuardianLink, receipts_get
from sandbox.json_response import JSONResponse
from sandbox.openai_api import from_rpc_error


async def receipt(request: Request) -> Response:
    link: GuardianLink = request.app.state.link
    caller = caller_of(request.scope, request.app.state.proxies)
    receipt_id = str(request.path_params.get("receipt_id", ""))
    if not receipt_id or len(receipt_id) > 128 or not receipt_id.isascii():
        return from_rpc_error(NotFound("no such receipt"))
    try:
        answer = await receipts_get(link, caller, receipt_id)
    except RPCError as exc:
        return from_rpc_error(exc)
    return JSONResponse(to_wire(answer), headers={"sealgate-receipt": answer.receipt})
