"""The ClickHouse evidence store: embedded chDB by default, a ClickHouse server through the native protocol.

``open_store(settings)`` picks the backend from ``clickhouse.url``; see docs/store.md.
"""

from mevwatch.monitor.store.backend import Backend, ChdbBackend, ServerBackend, open_backend
from mevwatch.monitor.store.store import AlertStore, open_store

__all__ = ["AlertStore", "Backend", "ChdbBackend", "ServerBackend", "open_backend", "open_store"]
