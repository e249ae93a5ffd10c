"""`_search`: which searches the bridge reranks, and running them (`_msearch`: msearch.py).

A search is reranked when its body asks for it (see request_forms) or its
index is configured under `indices:`. A configured index still passes a
search through untouched, counted and logged with the reason, when there is
nothing for a reranker to do: a cursor (scroll, search_after, pit), an
explicit sort, `size: 0`, the engine's own retriever, or no full-text clause
to take the query text from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rerank_bridge.bridge import passthrough
from rerank_bridge.bridge.bodies import MediaType, json_object
from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.bridge.exchange import Exchange
from rerank_bridge.bridge.filter_path import filter_path
from rerank_bridge.bridge.metrics import SEARCHES, STAGE_SECONDS
from rerank_bridge.bridge.middleware import OUTCOME
from rerank_bridge.bridge.search_params import PAGING, RerankedParams, reranked_params
from rerank_bridge.bridge.upstream import EngineThroughBridge
from rerank_bridge.search.connector import AsyncRerankingSearch
from rerank_bridge.search.errors import RequestError
from rerank_bridge.search.pipeline import SUMMARY_KEY
from rerank_bridge.search.request_forms import CURSORS, SearchRequest, has_rerank_form, parse_request
from rerank_bridge.search.settings import RerankSettings


@dataclass(frozen=True)
class PassThrough:
    """A search the engine answers as it is, and why (the metric's label and the log line)."""

    reason: str


@dataclass(frozen=True)
class Reranked:
    """A search the bridge reranks: read once, and what the URL adds to its answer."""

    request: SearchRequest
    params: RerankedParams


def _by_score(sort: Any) -> bool:
    """Whether a sort is relevance only (`"_score"`, `{"_score": "desc"}`, or a list of those)."""
    if isinstance(sort, list):
        return all(_by_score(part) for part in sort)
    return sort == "_score" or (isinstance(sort, dict) and list(sort) == ["_score"])


def _nothing_to_rerank(body: dict[str, Any], params: Mapping[str, str]) -> str | None:
    """Why a configured index's search is not reranked, read off its keys alone."""
    if "scroll" in params or any(cursor in body for cursor in CURSORS):
        return "cursor"
    if "retriever" in body:
        return "engine_retriever"
    if "sort" in params or not _by_score(body.get("sort", "_score")):
        return "sorted"
    if params.get("size", body.get("size")) in (0, "0"):
        return "size_0"
    return None


def read_search(
    config: BridgeConfig, index: str, body: dict[str, Any], params: Mapping[str, str], path: str
) -> Reranked | PassThrough:
    """The one reading of a search: parsed for the connector, or the reason it passes
    through. A search is reranked when its body asks for it (request_forms) or its
    index is configured; a configured index's search passes through when there is
    nothing for a reranker to do, and when no query text can be taken from it."""
    configured = config.rerank_for(index)
    asked = has_rerank_form(body)
    if not asked:
        if configured is None:
            return PassThrough("pass_through")
        if reason := _nothing_to_rerank(body, params):
            return PassThrough(f"not_reranked_{reason}")
    try:
        url = reranked_params(params, path)
    except RequestError as error:
        if not asked and error.field in PAGING:
            # The engine's own answer to its own parameter (a negative from, say),
            # as a search that did not ask for reranking would get it directly.
            return PassThrough("not_reranked_invalid_paging")
        raise
    try:
        return Reranked(parse_request(url.apply(body), configured or RerankSettings()), url)
    except RequestError as error:
        if not asked and error.field == "rerank.query_text":
            return PassThrough("not_reranked_no_query_text")
        raise


def record_outcome(ex: Exchange, outcome: str) -> None:
    """Counted in rerank_bridge_searches_total and written in the request's log line."""
    SEARCHES.labels(outcome).inc()
    ex.request.setdefault(OUTCOME, []).append(outcome)


async def rerank_search(
    ex: Exchange, index: str, request: SearchRequest, first_stage: dict[str, str], media: MediaType
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """One reranked search through the connector, its first stage through the forwarder."""
    started = time.perf_counter()
    engine = EngineThroughBridge(ex.state.upstream, ex.reading_headers(media), first_stage, media)
    searcher = AsyncRerankingSearch(engine, ex.state.reranker, dialect=ex.state.dialect)
    response = await searcher.search_parsed(index, request, request_id=ex.request_id)
    summary = response[SUMMARY_KEY]
    for stage, ms in summary.get("took_ms", {}).items():
        STAGE_SECONDS.labels(stage).observe(ms / 1e3)
    STAGE_SECONDS.labels("total").observe(time.perf_counter() - started)
    record_outcome(
        ex, "reranked" if summary["reranked"] else "fail_open" if "error" in summary else "no_text"
    )
    return response, engine.returned


async def search(ex: Exchange) -> web.StreamResponse:
    raw, media = await ex.read_body()
    body = json_object(raw, "body", ex.config.limits.max_json_depth)
    ex.check_body(body)
    index = ex.route.index
    # A search in a point in time names no index: the point in time is this caller's
    # own (cursors.checked_pit), opened on the indices its scope allowed.
    if index or body is None or "pit" not in body:
        index = await ex.indices(index, ex.target.params.get("expand_wildcards"))
    read = read_search(ex.config, ex.route.index, body or {}, dict(ex.target.params), ex.target.path)
    if isinstance(read, PassThrough):
        record_outcome(ex, read.reason)
        return await passthrough.search(ex, index, body, media)
    wanted = ex.answer_format
    response, returned = await rerank_search(ex, index, read.request, read.params.first_stage, media)
    if read.params.filter_path is not None:
        response = filter_path(response, read.params.filter_path)
    return wanted.render(response, pretty=read.params.pretty, headers=returned)
