"""The guardian's database: one interface, two backends (SQLite by default, PostgreSQL when
DATABASE_URL is set), the same schema and migrations on both."""

from guardian.storage.base import Storage
from guardian.storage.factory import open_storage

__all__ = ["Storage", "open_storage"]
