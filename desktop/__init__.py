"""SealGate Desktop: a PySide6 client that talks only to a SealGate hub, over HTTP.

It never talks to a provider and never holds a provider key; it imports neither `guardian`
nor `sandbox` (the import-boundary test checks this).
"""

__version__ = "0.1.0"
