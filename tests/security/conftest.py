from tests.e2e.world import w, world

__all__ = ["w", "world"]
