"""SealGate as an OAuth 2.1 authorization server for remote MCP clients.

The guardian owns users, so it owns grants: clients (registered with RFC 7591 or named by a
client metadata document), authorization codes, consents, access and refresh tokens, all
stored as SHA-256 hashes. The sandbox serves the endpoints and pages and asks over RPC.

    pkce.py       S256 checks (Authlib)
    redirects.py  redirect URI rules: exact match, loopback any port (RFC 8252)
    scopes.py     scopes and the roles and tools they open
    addresses.py  which resolved addresses a metadata fetch may reach
    resource.py   the hub's resource identifier (RFC 8707 audience)
    cimd.py       fetching a client ID metadata document, SSRF-guarded
    store.py      the tables
    service.py    the decisions
    handlers.py   the RPC handlers (sandbox and admin sockets)
"""
