"""rerank-bridge connectors: the reranker client and the engine integrations.

Importing this package never imports torch: applications embed it next to
their search code, and the model runs in the scoring server.
"""

from rerank_bridge.search.blending import BlendSettings
from rerank_bridge.search.client import (
    AsyncRerankClient,
    ModelInfo,
    Passage,
    RankedDocument,
    RerankClient,
    Reranking,
    Tls,
    Usage,
)
from rerank_bridge.search.connector import AsyncRerankingSearch, RerankingSearch
from rerank_bridge.search.errors import (
    EngineError,
    RequestError,
    RerankBridgeError,
    RerankRejected,
    RerankUnavailable,
)
from rerank_bridge.search.pipeline import HIT_KEY, SUMMARY_KEY
from rerank_bridge.search.settings import ChunkingSettings, Hybrid, KnnSearch, RerankSettings

__all__ = [
    "HIT_KEY",
    "SUMMARY_KEY",
    "AsyncRerankClient",
    "AsyncRerankingSearch",
    "BlendSettings",
    "ChunkingSettings",
    "EngineError",
    "Hybrid",
    "KnnSearch",
    "ModelInfo",
    "Passage",
    "RankedDocument",
    "RequestError",
    "RerankBridgeError",
    "RerankClient",
    "RerankRejected",
    "RerankSettings",
    "RerankUnavailable",
    "Reranking",
    "RerankingSearch",
    "Tls",
    "Usage",
]
