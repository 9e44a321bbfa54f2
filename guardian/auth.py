"""Former home of identity; its names now live in `guardian.identity.principal`.

Kept as re-exports only, so modules reshaped in parallel (the call path, the handlers) keep
importing while they move; nothing here builds or holds state, and nothing here imports a
service, so it cannot close a circle. New code imports `guardian.identity.principal`.
"""

from guardian.identity.principal import (
    ANONYMOUS,
    BUILTIN_ROLES,
    OPEN_MODE_DB_QUERY,
    OPERATOR,
    Principal,
    credential_hash,
)

__all__ = [
    "ANONYMOUS",
    "BUILTIN_ROLES",
    "OPEN_MODE_DB_QUERY",
    "OPERATOR",
    "Principal",
    "credential_hash",
]
