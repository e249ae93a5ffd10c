"""The URL parameters of a reranked `_search`, each honoured or refused by name.

A search the bridge passes through hands its parameters to the engine, which
checks them itself. A reranked search is run by the bridge, so it sorts them:
- paging (`from`, `size`) pages through the reranked window, as in the body
  (the URL wins over the body, as in Elasticsearch);
- `q` and its options become a `query_string` query (replacing the body's
  query, as in Elasticsearch), whose text the reranker reads;
- `filter_path`, `pretty` and `format` (json or yaml) shape the answer the bridge builds;
- the engine's own search options go to the first stage;
- `scroll` is refused: a reranked window pages with from/size;
- anything else is refused as the engine refuses unknown parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rerank_bridge.search.errors import RequestError

PAGING = ("from", "size")
QUERY_STRING_OPTIONS = {
    "df": "default_field",
    "analyzer": "analyzer",
    "analyze_wildcard": "analyze_wildcard",
    "default_operator": "default_operator",
    "lenient": "lenient",
}
BOOLEAN_QUERY_OPTIONS = ("analyze_wildcard", "lenient")
RESPONSE = ("filter_path", "pretty", "format")
# Elasticsearch 8/9 and OpenSearch 2/3 search options that act on the first stage.
FIRST_STAGE = frozenset(
    {
        "allow_no_indices",
        "allow_partial_search_results",
        "batched_reduce_size",
        "cancel_after_time_interval",
        "ccs_minimize_roundtrips",
        "docvalue_fields",
        "error_trace",
        "expand_wildcards",
        "explain",
        "force_synthetic_source",
        "human",
        "ignore_throttled",
        "ignore_unavailable",
        "include_named_queries_score",
        "max_concurrent_shard_requests",
        "phase_took",
        "pre_filter_shard_size",
        "preference",
        "request_cache",
        "rest_total_hits_as_int",
        "routing",
        "search_pipeline",
        "search_type",
        "seq_no_primary_term",
        "sort",
        "_source",
        "_source_excludes",
        "_source_includes",
        "_source_exclude_vectors",
        "stats",
        "stored_fields",
        "suggest_field",
        "suggest_mode",
        "suggest_size",
        "suggest_text",
        "terminate_after",
        "timeout",
        "track_scores",
        "track_total_hits",
        "typed_keys",
        "version",
    }
)


def unrecognized_parameter(name: str, path: str) -> RequestError:
    """The refusal of a URL parameter a call does not take, worded as the engines word it."""
    return RequestError(name, f"request [{path}] contains unrecognized parameter: [{name}]")


def flag(value: str, name: str) -> bool:
    """An Elasticsearch boolean parameter: `true`, `false`, or present without a value."""
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise RequestError(name, f"must be true or false, got {value[:40]!r}")


def _count(value: str, name: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise RequestError(name, f"must be a non-negative integer, got {value[:40]!r}")
    return int(value)


@dataclass(frozen=True)
class RerankedParams:
    first_stage: dict[str, str] = field(default_factory=dict)
    paging: dict[str, int] = field(default_factory=dict)
    query: dict[str, Any] | None = None
    filter_path: str | None = None
    pretty: bool = False

    def apply(self, body: dict[str, Any] | None) -> dict[str, Any]:
        """The body with the URL's paging and query in place."""
        merged = {**(body or {}), **self.paging}
        if self.query is not None:
            merged["query"] = self.query
        return merged


def reranked_params(params: Mapping[str, str], path: str) -> RerankedParams:
    for name in params:
        if name == "scroll":
            raise RequestError(
                "scroll", "cannot page a reranked search: use from/size inside the rank window"
            )
        if name not in (*PAGING, "q", *QUERY_STRING_OPTIONS, *RESPONSE) and name not in FIRST_STAGE:
            raise unrecognized_parameter(name, path)
    query = None
    if "q" in params:
        options: dict[str, Any] = {"query": params["q"]}
        for name, option in QUERY_STRING_OPTIONS.items():
            if name in params:
                options[option] = flag(params[name], name) if name in BOOLEAN_QUERY_OPTIONS else params[name]
        query = {"query_string": options}
    else:
        stray = next((name for name in QUERY_STRING_OPTIONS if name in params), None)
        if stray is not None:
            raise RequestError(stray, "only applies with the q parameter")
    return RerankedParams(
        first_stage={name: value for name, value in params.items() if name in FIRST_STAGE},
        paging={name: _count(params[name], name) for name in PAGING if name in params},
        query=query,
        filter_path=params.get("filter_path"),
        pretty=flag(params["pretty"], "pretty") if "pretty" in params else False,
    )
