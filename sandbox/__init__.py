"""The sandbox: the internet-facing process. It holds no secret and imports no guardian code."""
