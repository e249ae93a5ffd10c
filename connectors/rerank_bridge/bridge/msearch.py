"""`_msearch`: each search of the body read as `_search` reads one (searches.py), the
reranked ones run there, the rest sent to the engine in one `_msearch`, and the answers
put back in the body's order.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rerank_bridge.bridge import cursors, passthrough
from rerank_bridge.bridge.bodies import MediaType, dumps, ndjson_lines
from rerank_bridge.bridge.boundary import index_expression
from rerank_bridge.bridge.exchange import Exchange
from rerank_bridge.bridge.filter_path import filter_path
from rerank_bridge.bridge.formats import from_engine, relay
from rerank_bridge.bridge.search_params import flag
from rerank_bridge.bridge.searches import PassThrough, Reranked, read_search, record_outcome, rerank_search
from rerank_bridge.bridge.upstream import Call, Reply, add_returned
from rerank_bridge.search.errors import Refused, RequestError, RerankBridgeError
from rerank_bridge.search.strict_json import StrictForm, validated


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
            record_outcome(ex, item.read.reason)
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
