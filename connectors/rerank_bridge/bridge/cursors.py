"""Scrolls and points in time through the bridge: each caller opens, uses and
closes its own contexts, and no other (contexts.py keeps the books).

Every call here has an answer the bridge must read (the context's id), so the
engine is asked for JSON and the caller gets the format it asked for
(formats.py); a format the bridge cannot write is refused before any context
is opened. Ids a caller did not open here are answered as the engine answers
ids it does not know, without reaching it.

- Scroll: a search with `?scroll=` opens one; `GET|POST /_search/scroll` (id in
  the body, the URL parameter or the path) continues it; `DELETE
  /_search/scroll` (the same three ways, `_all` meaning every scroll of this
  caller) clears.
- Point in time: Elasticsearch's `POST /{index}/_pit` and `DELETE /_pit`,
  OpenSearch's `POST /{index}/_search/point_in_time` and `DELETE
  /_search/point_in_time[/_all]`; a search names one in `pit.id`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rerank_bridge.bridge.bodies import MediaType, dumps, json_object
from rerank_bridge.bridge.config import Limits
from rerank_bridge.bridge.contexts import ContextRegistry
from rerank_bridge.bridge.exchange import BridgeState, Exchange
from rerank_bridge.bridge.formats import answer, relay
from rerank_bridge.bridge.search_params import unrecognized_parameter
from rerank_bridge.bridge.upstream import Call, Reply
from rerank_bridge.search.errors import Refused, RequestError
from rerank_bridge.search.strict_json import StrictForm, validated

# Answer-shaping parameters the scroll and point-in-time APIs take besides their own.
SHAPING = ("rest_total_hits_as_int", "pretty", "human", "error_trace", "format")


def _no_filter_path(params: dict[str, str]) -> None:
    if "filter_path" in params:
        raise RequestError(
            "filter_path",
            "cannot be combined with a scroll or point in time here: the bridge must see the context's id",
        )


class ContextMissing(Refused):
    """An id this caller did not open here, answered as the engines answer an expired
    one: a 404 search_phase_execution_exception caused by search_context_missing_exception."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(404, "search_phase_execution_exception", reason, field)

    def error_body(self) -> dict[str, object]:
        cause = {"type": "search_context_missing_exception", "reason": str(self)}
        error = {
            "root_cause": [cause],
            "type": self.kind,
            # The engines say "all shards failed" here; the bridge names the field and the id.
            "reason": str(self),
            "phase": "query",
            "grouped": True,
            "failed_shards": [],
            "field": self.field,
            "caused_by": cause,
        }
        return {"error": error, "status": self.status}


def _unknown(kind: str, context_id: str, field: str) -> Refused:
    reason = f"{field} [{context_id[:80]}] is not a {kind} this caller opened here (expired or closed?)"
    return ContextMissing(reason, field)


def _id_in(reply: Reply, *names: str) -> str | None:
    document = reply.document() if reply.status == 200 else None
    for name in names:
        value = document.get(name) if isinstance(document, dict) else None
        if isinstance(value, str):
            return value
    return None


# ---- searches that open or use a context -------------------------------------------------


def checked_pit(ex: Exchange, body: dict[str, Any] | None) -> float | None:
    """The keep-alive of the point in time a search names, which must be this caller's."""
    pit = body.get("pit") if body is not None else None
    if pit is None:
        return None
    if not isinstance(pit, dict) or not isinstance(pit.get("id"), str):
        raise RequestError("pit.id", "must be the id of a point in time")
    registry = ex.state.points_in_time
    known = registry.keep_alive_of(pit["id"], ex.owner)
    if known is None:
        raise _unknown("point in time", pit["id"], "pit.id")
    asked = pit.get("keep_alive")
    return registry.keep_alive(asked) if isinstance(asked, str) else known


async def search_with_context(
    ex: Exchange,
    segments: tuple[str, ...],
    params: dict[str, str],
    body: dict[str, Any] | None,
    media: MediaType,
) -> web.StreamResponse:
    """A search that opens a scroll (`?scroll=`) or uses a point in time (`pit` in its body)."""
    _no_filter_path(params)
    engine_params = ex.params_for_reading(params)
    pit_keep_alive = checked_pit(ex, body)
    call = Call(
        ex.method,
        segments,
        engine_params,
        dumps(body) if body is not None else None,
        media.header(),
    )
    if "scroll" not in params:
        reply = await ex.state.upstream.send(call, ex.reading_headers(media), ex.content_encoding)
        assert body is not None and pit_keep_alive is not None
        if (new_id := _id_in(reply, "pit_id")) is not None:
            ex.state.points_in_time.renewed(body["pit"]["id"], new_id, ex.owner, pit_keep_alive)
        return relay(reply, ex.answer_format)
    scrolls = ex.state.scrolls
    keep_alive = scrolls.keep_alive(params["scroll"])
    with scrolls.room(ex.owner):
        reply = await ex.state.upstream.send(call, ex.reading_headers(media), ex.content_encoding)
        if (scroll_id := _id_in(reply, "_scroll_id")) is not None:
            scrolls.opened(scroll_id, ex.owner, keep_alive)
    return relay(reply, ex.answer_format)


# ---- scroll ------------------------------------------------------------------------------


class ScrollContinuation(StrictForm):
    scroll_id: str
    scroll: str | None = None


class ScrollClearing(StrictForm):
    scroll_id: str | list[str]


async def scroll(ex: Exchange) -> web.StreamResponse:
    """Continue (GET/POST) or clear (DELETE) scrolls, only those this caller opened here."""
    params = dict(ex.target.params)
    _no_filter_path(params)
    for name in params:
        if name not in ("scroll_id", "scroll", *SHAPING):
            raise unrecognized_parameter(name, ex.target.path)
    options = ex.params_for_reading({name: params[name] for name in SHAPING if name in params})
    raw, media = await ex.read_body()
    body = json_object(raw, "body", ex.config.limits.max_json_depth) or {}
    # Like the engine, the ids (and keep-alive) may come in the path or URL instead of the body.
    fields: dict[str, Any] = {name: params[name] for name in ("scroll_id", "scroll") if name in params}
    if len(ex.target.segments) == 3:
        fields["scroll_id"] = ex.target.segments[2]
    fields |= body
    if ex.method == "DELETE":
        if isinstance(fields.get("scroll_id"), str) and "scroll_id" not in body:
            fields["scroll_id"] = fields["scroll_id"].split(",")
        fields.pop("scroll", None)
        return await _clear_scrolls(ex, validated(ScrollClearing, fields, "body"), media)
    return await _continue(ex, validated(ScrollContinuation, fields, "body"), options, media)


async def _continue(
    ex: Exchange, request: ScrollContinuation, options: dict[str, str], media: MediaType
) -> web.StreamResponse:
    scrolls = ex.state.scrolls
    known = scrolls.keep_alive_of(request.scroll_id, ex.owner)
    if known is None:
        raise _unknown("scroll", request.scroll_id, "scroll_id")
    keep_alive = scrolls.keep_alive(request.scroll) if request.scroll is not None else known
    body = dumps({"scroll_id": request.scroll_id, "scroll": f"{round(keep_alive * 1000)}ms"})
    call = Call("POST", ("_search", "scroll"), options, body, media.header(False))
    reply = await ex.state.upstream.send(call, ex.reading_headers(media))
    if (new_id := _id_in(reply, "_scroll_id")) is not None:
        scrolls.renewed(request.scroll_id, new_id, ex.owner, keep_alive)
    elif reply.status == 404:
        scrolls.closed(request.scroll_id)
    return relay(reply, ex.answer_format)


async def _clear_scrolls(ex: Exchange, request: ScrollClearing, media: MediaType) -> web.StreamResponse:
    scrolls = ex.state.scrolls
    ids = [request.scroll_id] if isinstance(request.scroll_id, str) else request.scroll_id
    everything = ids == ["_all"]
    mine = (
        scrolls.owned_by(ex.owner) if everything else [i for i in ids if scrolls.keep_alive_of(i, ex.owner)]
    )
    if not mine:
        # What the engine answers: for _all with none open, 200; for ids it does not know, 404.
        return answer({"succeeded": True, "num_freed": 0}, status=200 if everything else 404)
    call = Call("DELETE", ("_search", "scroll"), {}, dumps({"scroll_id": mine}), media.header(False))
    reply = await ex.state.upstream.send(call, ex.reading_headers(media))
    if reply.status in (200, 404):
        for scroll_id in mine:
            scrolls.closed(scroll_id)
    return relay(reply, ex.answer_format)


# ---- point in time -----------------------------------------------------------------------


async def pit_open(ex: Exchange) -> web.StreamResponse:
    params = dict(ex.target.params)
    _no_filter_path(params)
    engine_params = ex.params_for_reading(params)
    if "keep_alive" not in params:
        raise RequestError("keep_alive", "is required to open a point in time")
    registry = ex.state.points_in_time
    keep_alive = registry.keep_alive(params["keep_alive"])
    raw, media = await ex.read_body()
    body = json_object(raw, "body", ex.config.limits.max_json_depth)
    ex.check_body(body)
    index = await ex.indices(ex.route.index, params.get("expand_wildcards"))
    call = Call(
        "POST",
        ex.route.segments(index),
        engine_params,
        dumps(body) if body is not None else None,
        media.header(False),
    )
    with registry.room(ex.owner):
        reply = await ex.state.upstream.send(call, ex.reading_headers(media), ex.content_encoding)
        # Elasticsearch names it `id`, OpenSearch `pit_id`.
        if (pit_id := _id_in(reply, "id", "pit_id")) is not None:
            registry.opened(pit_id, ex.owner, keep_alive)
    return relay(reply, ex.answer_format)


class PitClosing(StrictForm):
    id: str | None = None  # Elasticsearch
    pit_id: str | list[str] | None = None  # OpenSearch


async def pit_close(ex: Exchange) -> web.StreamResponse:
    params = dict(ex.target.params)
    for name in params:
        if name not in SHAPING:
            raise unrecognized_parameter(name, ex.target.path)
    engine_params = ex.params_for_reading(params)
    raw, media = await ex.read_body()
    registry = ex.state.points_in_time
    if ex.target.segments[-1] == "_all":
        ids = registry.owned_by(ex.owner)
    else:
        closing = validated(
            PitClosing, json_object(raw, "body", ex.config.limits.max_json_depth) or {}, "body"
        )
        asked = closing.pit_id if closing.id is None else closing.id
        if asked is None:
            raise RequestError("id" if ex.target.segments == ("_pit",) else "pit_id", "is required")
        ids = [asked] if isinstance(asked, str) else asked
        if missing := next((i for i in ids if registry.keep_alive_of(i, ex.owner) is None), None):
            raise _unknown("point in time", missing, "id" if closing.id is not None else "pit_id")
    if not ids:
        return answer({"pits": []})
    body = {"id": ids[0]} if ex.target.segments == ("_pit",) else {"pit_id": ids}
    call = Call("DELETE", ex.target.segments[:2], engine_params, dumps(body), media.header(False))
    reply = await ex.state.upstream.send(call, ex.reading_headers(media))
    if reply.status in (200, 404):
        for pit_id in ids:
            registry.closed(pit_id)
    return relay(reply, ex.answer_format)


# ---- shutdown ----------------------------------------------------------------------------


async def close_remaining(state: BridgeState) -> None:
    """At shutdown: close every context the bridge still remembers (with its own credentials)."""
    if remaining := state.scrolls.remaining():
        call = Call("DELETE", ("_search", "scroll"), {}, dumps({"scroll_id": remaining}), "application/json")
        await state.upstream.send(call, {}, as_bridge=True)
    if pits := state.points_in_time.remaining():
        for segments, body in state.dialect.pit_closes(pits):
            await state.upstream.send(
                Call("DELETE", segments, {}, dumps(body), "application/json"), {}, as_bridge=True
            )


def registries(limits: Limits) -> tuple[ContextRegistry, ContextRegistry]:
    """The scroll and point-in-time books, sized by the configured limits."""
    per_caller = limits.max_open_contexts_per_caller
    return (
        ContextRegistry(
            "scroll", "scroll", limits.max_open_scrolls, limits.max_scroll_keep_alive, per_caller
        ),
        ContextRegistry(
            "point in time",
            "keep_alive",
            limits.max_open_points_in_time,
            limits.max_point_in_time_keep_alive,
            per_caller,
        ),
    )
