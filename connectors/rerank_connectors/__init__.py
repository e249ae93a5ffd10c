"""rerank-bridge connectors: the reranker client and the engine integrations.

Importing this package never imports torch: applications embed it next to
their search code, and the model runs in the scoring server.
"""

from rerank_connectors.blending import BlendSettings
from rerank_connectors.client import AsyncRerankClient, Passage, RankedDocument, RerankClient, Reranking
from rerank_connectors.connector import AsyncRerankingSearch, RerankingSearch
from rerank_connectors.errors import (
    EngineError,
    RequestError,
    RerankBridgeError,
    RerankRejected,
    RerankUnavailable,
)
from rerank_connectors.pipeline import HIT_KEY, SUMMARY_KEY
from rerank_connectors.settings import ChunkingSettings, Hybrid, KnnSearch, RerankSettings

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
]
