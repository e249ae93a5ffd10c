"""Prometheus metrics of the HTTP bridge (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "rerank_bridge_requests_total",
    "HTTP requests, by route (a fixed set: search, msearch, read, scroll, pit_open, pit_close, root, "
    "rerank_v1, rerank_v2, metrics, ui, ui_compare, forwarded, refused) and status (499: the caller "
    "went away before its body arrived)",
    ["route", "status"],
)
SEARCHES = Counter(
    "rerank_bridge_searches_total",
    "Searches by outcome: reranked, pass_through, not_reranked_<reason> (a configured index with "
    "nothing to rerank), fail_open (reranker failed, first stage returned), no_text",
    ["outcome"],
)
STAGE_SECONDS = Histogram(
    "rerank_bridge_stage_seconds",
    "Time per reranked search by stage: embed, first_stage (engine), rerank (scoring server), total",
    ["stage"],
    buckets=BUCKETS,
)
MALFORMED_REQUESTS = Counter(
    "rerank_bridge_malformed_requests_total",
    "Requests the HTTP server could not parse (answered 400 before any API key was read)",
)
