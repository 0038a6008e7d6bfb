"""The PostgreSQL store (`--store postgres --store-url postgresql://...`)."""

from ferrymq.store.postgres.connect import StoreConnectError
from ferrymq.store.postgres.schema import SchemaError
from ferrymq.store.postgres.store import Fencing, PostgresStore, StoreUnavailable

__all__ = ["Fencing", "PostgresStore", "SchemaError", "StoreConnectError", "StoreUnavailable"]
