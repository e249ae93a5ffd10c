"""The hand-written asyncio core of the client and the connector. `_sync/` is generated
from it (`python connectors/generate_sync.py`; tests/search/test_sync_generated.py
fails when the two differ), so the sync and async APIs cannot drift."""
