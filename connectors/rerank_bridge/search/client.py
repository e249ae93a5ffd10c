"""The rerank.v1 clients: AsyncRerankClient (written in `_async/`) and RerankClient
(generated from it in `_sync/`), with the plain types their calls take and return."""

from rerank_bridge.search._async.client import AsyncRerankClient
from rerank_bridge.search._sync.client import RerankClient
from rerank_bridge.search.client_messages import (
    Limits,
    ModelInfo,
    Passage,
    RankedDocument,
    Reranking,
    Timings,
    Usage,
)
from rerank_bridge.search.client_transport import Addresses, Tls
from rerank_bridge.search.errors import SERVER_GONE

__all__ = [
    "SERVER_GONE",
    "Addresses",
    "AsyncRerankClient",
    "Limits",
    "ModelInfo",
    "Passage",
    "RankedDocument",
    "RerankClient",
    "Reranking",
    "Timings",
    "Tls",
    "Usage",
]
