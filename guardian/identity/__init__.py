"""Who a credential belongs to, and the accounts behind it: the guardian's identity wing.

Each service is built from storage, limits and the live configuration; `guardian.services`
lists them all, so no service is reached through another. Imports point one way only:
`principal` (a leaf) <- `passwords`, `rules`, `cache` <- `accounts` <- `sessions`, `tokens`,
`guardian.oauth.service` <- `credentials`.

    principal.py    the principal, roles and credential hashing (imports no guardian module)
    passwords.py    PBKDF2 password hashes at a cost from the environment
    rules.py        [HUB_LIMITS]' sign-in rules and the shape of a user name
    cache.py        resolved principals, cached for a few seconds by credential hash
    accounts.py     users: open mode, sign-in checks, operator changes
    sessions.py     browser sessions: login, logout, resolution
    tokens.py       API tokens: issue, revoke, resolution
    credentials.py  a sealed call's credential -> its principal (token, session or OAuth)
"""
