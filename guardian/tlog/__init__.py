"""The verifiable audit and billing log (RFC 9162 Merkle tree, C2SP checkpoints).

    canonical.py     RFC 8785 JSON: one byte string per record, whoever encodes it
    merkle.py        RFC 9162 hashing, the append frontier, inclusion and consistency proofs
    leaves.py        what a leaf holds for an audit entry and for a ledger row
    note.py          C2SP signed notes and tlog checkpoints, Ed25519
    signing_key.py   the checkpoint key: in the secret store, else a 0600 file
    checkpoints.py   the guardian's periodic signer and exporter
    verify.py        the whole tree recomputed from the database, against a checkpoint

The database rows live in `guardian/storage/tlog.py`; the standalone verifier, which imports
nothing of SealGate, is `tools/audit_verify.py`.
"""
