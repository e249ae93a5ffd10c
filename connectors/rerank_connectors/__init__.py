"""rerank-bridge connectors: the reranker client and the engine integrations.

Importing this package never imports torch: applications embed it next to
their search code, and the model runs in the scoring server.
"""

from rerank_connectors.client import AsyncRerankClient, RankedDocument, RerankClient, Reranking

__all__ = ["AsyncRerankClient", "RankedDocument", "RerankClient", "Reranking"]
