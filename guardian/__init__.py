"""The guardian: the only SealGate process that holds secrets and talks to providers."""
