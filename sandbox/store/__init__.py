"""The embedded store (SQLite)."""

from sandbox.store.db import Row, Store
from sandbox.store.schema import WORLD_TABLES

__all__ = ["WORLD_TABLES", "Row", "Store"]
