"""The only code both SealGate processes import: wire format, methods, errors, `.pyfun`.

Nothing in this package opens a file, a socket or reads the environment on import; the
guardian and the sandbox decide where bytes come from.
"""

__version__ = "0.1.0"

#: Bumped whenever a method, a schema or the framing changes incompatibly.
PROTOCOL_VERSION = 1
