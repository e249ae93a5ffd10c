"""Reranked search: AsyncRerankingSearch (written in `_async/`) and RerankingSearch
(generated from it in `_sync/`). See `_async/connector.py` for how a search runs."""

from rerank_bridge.search._async.connector import AsyncRerankingSearch
from rerank_bridge.search._sync.connector import RerankingSearch
from rerank_bridge.search.search_steps import FirstStage

__all__ = ["AsyncRerankingSearch", "FirstStage", "RerankingSearch"]
