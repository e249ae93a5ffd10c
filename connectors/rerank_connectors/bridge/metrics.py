"""Prometheus metrics of the HTTP bridge (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("rerank_bridge_requests_total", "HTTP requests, by route and status", ["route", "status"])
STAGE_SECONDS = Histogram(
    "rerank_bridge_stage_seconds",
    "Time per search by stage: embed, first_stage (engine), rerank (scoring server), total",
    ["stage"],
    buckets=BUCKETS,
)
