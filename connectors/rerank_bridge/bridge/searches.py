"""`_search` and `_msearch`: which searches the bridge reranks, and running them.

A search is reranked when its body asks for it (see request_forms) or its
index is configured under `indices:`. A configured index still passes a
search through untouched, counted and logged with the reason, when there is
nothing for a reranker to do: a cursor (scroll, search_after, pit), an
explicit sort, `size: 0`, the engine's own retriever, or no full-text clause
to take the query text from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rerank_bridge.bridge import cursors, passthrough
from rerank_bridge.bridge.bodies import MediaType, dumps, json_object, ndjson_lines
from rerank_bridge.bridge.boundary import Refused, index_expression
from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.bridge.exchange import Exchange
from rerank_bridge.bridge.filter_path import filter_path
from rerank_bridge.bridge.formats import from_engine, relay
from rerank_bridge.bridge.metrics import SEARCHES, STAGE_SECONDS
from rerank_bridge.bridge.middleware import OUTCOME
from rerank_bridge.bridge.search_params import PAGING, RerankedParams, flag, reranked_params
from rerank_bridge.bridge.upstream import Call, EngineThroughBridge, Reply, add_returned
from rerank_bridge.search.connector import AsyncRerankingSearch
from rerank_bridge.search.errors import RequestError, RerankBridgeError
from rerank_bridge.search.pipeline import SUMMARY_KEY
from rerank_bridge.search.request_forms import CURSORS, SearchRequest, has_rerank_form, parse_request
from rerank_bridge.search.settings import RerankSettings
from rerank_bridge.search.strict_json import StrictForm, validated


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


def _record(ex: Exchange, outcome: str) -> None:
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
    _record(ex, "reranked" if summary["reranked"] else "fail_open" if "error" in summary else "no_text")
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
        _record(ex, read.reason)
        return await passthrough.search(ex, index, body, media)
    wanted = ex.answer_format
    response, returned = await rerank_search(ex, index, read.request, read.params.first_stage, media)
    if read.params.filter_path is not None:
        response = filter_path(response, read.params.filter_path)
    return wanted.render(response, pretty=read.params.pretty, headers=returned)


class MsearchHeader(StrictForm):
    """One search's header line: where it runs and the engine options it carries."""

    index: str | list[str] | None = None
    search_type: str | None = None
    preference: str | None = None
    routing: str | None = None
    request_cache: bool | None = None
    allow_no_indices: bool | None = None
    expand_wildcards: str | list[str] | None = None
    ignore_unavailable: bool | None = None
    ignore_throttled: bool | None = None
    allow_partial_search_results: bool | None = None
    ccs_minimize_roundtrips: bool | None = None

    def engine_params(self) -> dict[str, str]:
        """The options as the URL parameters of a single search."""
        return {name: _url_value(value) for name, value in self if name != "index" and value is not None}


def _url_value(value: bool | str | list[str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return ",".join(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class MsearchItem:
    header: MsearchHeader
    body: dict[str, Any]
    index: str
    # A search whose body is wrong is answered with its error alone, as the engine does.
    read: Reranked | PassThrough | RerankBridgeError
    # Set where a scoped key's search names an index outside its scope: that search
    # alone is answered with the error, as the engines' security answers per search.
    refused: Refused | None = None
    # The keep-alive of the caller's point in time this search names, if it names one.
    pit_keep_alive: float | None = None

    @property
    def error(self) -> RerankBridgeError | None:
        """What this search alone is answered with: its scope's refusal, else its own mistake."""
        if self.refused is not None:
            return self.refused
        return self.read if isinstance(self.read, RerankBridgeError) else None


# msearch URL parameters that also act on a reranked search's first stage: the
# engine reads some as every search's, the rest as defaults its header overrides.
MSEARCH_FIRST_STAGE = (
    "allow_no_indices",
    "ccs_minimize_roundtrips",
    "error_trace",
    "expand_wildcards",
    "human",
    "ignore_throttled",
    "ignore_unavailable",
    "include_named_queries_score",
    "max_concurrent_shard_requests",
    "pre_filter_shard_size",
    "rest_total_hits_as_int",
    "routing",
    "search_type",
    "typed_keys",
)


async def _items(ex: Exchange, lines: list[Any]) -> list[MsearchItem]:
    if len(lines) % 2:
        raise RequestError("body", "msearch needs a header line and a body line for each search")
    count, limit = len(lines) // 2, ex.config.limits.max_msearch_searches
    if count == 0:
        raise RequestError("body", "msearch holds no search")
    if count > limit:
        raise RequestError("body", f"msearch holds {count} searches; the bridge's limit is {limit}")
    items = []
    for i in range(count):
        where = f"searches[{i}]"
        header = validated(MsearchHeader, lines[2 * i], f"{where}.header")
        body = lines[2 * i + 1]
        if not isinstance(body, dict):
            raise RequestError(f"{where}.body", f"must be a JSON object, got {type(body).__name__}")
        ex.check_body(body, f"{where}.body")
        pit_keep_alive = cursors.checked_pit(ex, body)
        named = ",".join(header.index) if isinstance(header.index, list) else header.index
        index = index_expression(named, f"{where}.header.index") if named else ex.route.index
        read: Reranked | PassThrough | RerankBridgeError
        try:
            read = read_search(ex.config, index, body, {}, ex.target.path)
        except RerankBridgeError as error:
            read = error
        if ex.scope is None or (pit_keep_alive is not None and not index):
            # A search in a point in time names no index: the point in time is this
            # caller's own (cursors.checked_pit), opened on the indices its scope allowed.
            items.append(MsearchItem(header, body, index, read, None, pit_keep_alive))
            continue
        wildcards = header.expand_wildcards
        expand = _url_value(wildcards) if wildcards is not None else ex.target.params.get("expand_wildcards")
        try:
            scoped = await ex.indices(index, expand, f"{where}.header.index")
        except Refused as refusal:
            items.append(MsearchItem(header, body, index, read, refusal, pit_keep_alive))
            continue
        # Written into the header every time: the engine reads a header without an index
        # as the URL's, and the URL a scoped key's msearch goes to names none.
        header = header.model_copy(update={"index": scoped})
        items.append(MsearchItem(header, body, scoped, read, None, pit_keep_alive))
    return items


async def _engine_msearch(
    ex: Exchange, items: list[MsearchItem], params: dict[str, str], media: MediaType, reading: bool
) -> Reply:
    lines = [dumps(line) for item in items for line in (item.header.model_dump(exclude_none=True), item.body)]
    # A scoped key's searches each name their checked indices (_items), so the URL names none.
    segments = ("_msearch",) if ex.scope is not None else ex.target.segments
    call = Call(ex.method, segments, params, b"\n".join(lines) + b"\n", media.header(True))
    headers = ex.reading_headers(media) if reading else ex.headers
    return await ex.state.upstream.send(call, headers, ex.content_encoding)


async def _reranked_item(
    ex: Exchange, item: MsearchItem, first_stage: dict[str, str], media: MediaType
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    assert isinstance(item.read, Reranked)
    try:
        params = {**first_stage, **item.header.engine_params()}
        response, returned = await rerank_search(ex, item.index, item.read.request, params, media)
    except RerankBridgeError as error:
        return _failed(error), []
    return {**response, "status": 200}, returned


def _failed(error: RerankBridgeError) -> dict[str, Any]:
    """One search of an msearch answered with an error, as the engine writes it."""
    return {**error.error_body(), "status": error.status}


def _renew_points_in_time(ex: Exchange, items: list[MsearchItem], responses: list[Any]) -> None:
    """The ids the engine handed back for the caller's points in time, remembered."""
    for item, response in zip(items, responses, strict=True):
        new_id = response.get("pit_id") if isinstance(response, dict) else None
        if item.pit_keep_alive is not None and isinstance(new_id, str):
            ex.state.points_in_time.renewed(item.body["pit"]["id"], new_id, ex.owner, item.pit_keep_alive)


async def _msearch_in_points_in_time(
    ex: Exchange, items: list[MsearchItem], params: dict[str, str], media: MediaType
) -> web.StreamResponse:
    """An msearch the engine answers whole, some of whose searches use the caller's points
    in time: read whole, for the ids the engine may have given them, then relayed with
    the caller's filter_path applied here."""
    filtered = params.pop("filter_path", None)
    reply = await _engine_msearch(ex, items, ex.params_for_reading(params), media, reading=True)
    if reply.status != 200:
        return relay(reply, ex.answer_format)
    document = reply.document()
    _renew_points_in_time(ex, items, document["responses"])
    if filtered is None:
        return relay(reply, ex.answer_format)
    pretty = "pretty" in params and flag(params["pretty"], "pretty")
    return ex.answer_format.render(filter_path(document, filtered), pretty=pretty, headers=reply.headers)


async def msearch(ex: Exchange) -> web.StreamResponse:
    started = time.perf_counter()
    raw, media = await ex.read_body(ndjson_allowed=True)
    items = await _items(ex, ndjson_lines(raw, ex.config.limits.max_json_depth))
    for item in items:
        if isinstance(item.read, PassThrough) and item.error is None:
            _record(ex, item.read.reason)
    params = passthrough.engine_params(ex.target)
    refused = [i for i, item in enumerate(items) if item.error is not None]
    reranked = [i for i, item in enumerate(items) if isinstance(item.read, Reranked) and i not in refused]
    if not reranked and not refused:
        if not any(item.pit_keep_alive is not None for item in items):
            return from_engine(await _engine_msearch(ex, items, params, media, reading=False))
        return await _msearch_in_points_in_time(ex, items, params, media)
    # Mixed: the bridge builds the answer, so it applies filter_path, pretty and format itself.
    wanted = ex.answer_format
    shape = {name: params.pop(name) for name in ("filter_path", "pretty", "format") if name in params}
    answers: list[Any] = [None] * len(items)
    for i in refused:
        error = items[i].error
        assert error is not None
        answers[i] = _failed(error)
    returned: list[tuple[str, str]] = []
    passed = [i for i in range(len(items)) if i not in reranked and i not in refused]
    if passed:
        reply = await _engine_msearch(ex, [items[i] for i in passed], params, media, reading=True)
        if reply.status != 200:
            return from_engine(reply)
        add_returned(returned, reply.headers)
        responses = reply.document()["responses"]
        _renew_points_in_time(ex, [items[i] for i in passed], responses)
        for i, response in zip(passed, responses, strict=True):
            answers[i] = response
    first_stage = {name: params[name] for name in MSEARCH_FIRST_STAGE if name in params}
    results = await asyncio.gather(*(_reranked_item(ex, items[i], first_stage, media) for i in reranked))
    for i, (result, headers) in zip(reranked, results, strict=True):
        answers[i] = result
        add_returned(returned, headers)
    document: dict[str, Any] = {"took": round((time.perf_counter() - started) * 1e3), "responses": answers}
    if "filter_path" in shape:
        document = filter_path(document, shape["filter_path"])
    pretty = "pretty" in shape and flag(shape["pretty"], "pretty")
    return wanted.render(document, pretty=pretty, headers=returned)
