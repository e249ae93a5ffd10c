"""Calls the bridge hands to the engine without reranking: the root info call,
searches it does not rerank, the scroll lifecycle of the scrolls it opened,
and whatever an `allow:` rule names. Bodies are re-serialised from their
parsed form; the engine's answer comes back as it was."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rerank_connectors.bridge.bodies import MediaType, dumps, json_object, loads, media_type, ndjson_lines
from rerank_connectors.bridge.boundary import Refused, Target
from rerank_connectors.bridge.exchange import BridgeState, Exchange, answer, from_engine
from rerank_connectors.bridge.upstream import Call, Reply
from rerank_connectors.errors import RequestError
from rerank_connectors.settings import StrictForm, validated

# The body travels in the request, where the bridge reads it, never in the URL.
BODY_IN_URL = ("source", "source_content_type")


def engine_params(target: Target) -> dict[str, str]:
    for name in BODY_IN_URL:
        if name in target.params:
            raise RequestError(
                name, "send the body as the request body: the bridge must read what it forwards"
            )
    return dict(target.params)


async def root(ex: Exchange) -> web.StreamResponse:
    return from_engine(
        await ex.state.upstream.send(Call(ex.method, (), engine_params(ex.target)), ex.headers)
    )


async def forwarded(ex: Exchange) -> web.StreamResponse:
    """A call an `allow:` rule names: JSON or NDJSON bodies only, checked and rebuilt."""
    raw, body, content_type = await ex.body(), None, None
    if raw is not None:
        media = media_type(ex.request.headers.get("Content-Type"), ndjson_allowed=True)
        depth = ex.config.limits.max_json_depth
        if media.ndjson:
            body = b"".join(dumps(line) + b"\n" for line in ndjson_lines(raw, depth))
        else:
            body = dumps(loads(raw, "body", depth))
        content_type = media.header()
    call = Call(ex.method, ex.target.segments, engine_params(ex.target), body, content_type)
    return from_engine(await ex.state.upstream.send(call, ex.headers, ex.content_encoding))


def _scroll_id(reply: Reply) -> str | None:
    payload = reply.json()
    scroll_id = payload.get("_scroll_id") if isinstance(payload, dict) else None
    return scroll_id if isinstance(scroll_id, str) else None


def _no_filter_with_scroll(params: dict[str, str]) -> None:
    if "filter_path" in params:
        raise RequestError(
            "filter_path",
            "cannot be combined with a scroll here: the bridge must see _scroll_id to let you clear it",
        )


async def search(ex: Exchange, body: dict[str, Any] | None, media: MediaType) -> web.StreamResponse:
    """A search the bridge does not rerank; with `?scroll=` it remembers the context it opens."""
    params = engine_params(ex.target)
    keep_alive = None
    if "scroll" in params:
        _no_filter_with_scroll(params)
        keep_alive = ex.state.scrolls.keep_alive(params["scroll"])
        ex.state.scrolls.make_room()
    call = Call(
        ex.method, ex.target.segments, params, dumps(body) if body is not None else None, media.header()
    )
    reply = await ex.state.upstream.send(call, ex.headers, ex.content_encoding)
    if keep_alive is not None and (scroll_id := _scroll_id(reply)) is not None:
        ex.state.scrolls.opened(scroll_id, ex.owner, keep_alive)
    return from_engine(reply)


class ScrollContinuation(StrictForm):
    scroll_id: str
    scroll: str | None = None


class ScrollClearing(StrictForm):
    scroll_id: str | list[str]


# Parameters of the scroll API besides scroll_id and scroll (filter_path is refused: see above).
SCROLL_OPTIONS = ("rest_total_hits_as_int", "pretty", "human", "error_trace")


def _unknown_scroll(scroll_id: str) -> Refused:
    reason = f"scroll_id [{scroll_id[:80]}] is not a scroll this caller opened here (expired or cleared?)"
    return Refused(404, "search_context_missing_exception", reason, "scroll_id")


async def scroll(ex: Exchange) -> web.StreamResponse:
    """Continue (GET/POST) or clear (DELETE) scrolls, only those this caller opened here."""
    params = engine_params(ex.target)
    _no_filter_with_scroll(params)
    for name in params:
        if name not in ("scroll_id", "scroll", *SCROLL_OPTIONS):
            raise RequestError(name, f"request [{ex.target.path}] contains unrecognized parameter: [{name}]")
    media = media_type(ex.request.headers.get("Content-Type"))
    body = json_object(await ex.body(), "body", ex.config.limits.max_json_depth) or {}
    # Like the engine, the ids (and keep-alive) may come in the URL instead of the body.
    fields = {name: params[name] for name in ("scroll_id", "scroll") if name in params} | body
    options = {name: params[name] for name in SCROLL_OPTIONS if name in params}
    if ex.method == "DELETE":
        if isinstance(fields.get("scroll_id"), str) and "scroll_id" in params and "scroll_id" not in body:
            fields["scroll_id"] = fields["scroll_id"].split(",")
        fields.pop("scroll", None)
        return await _clear(ex, validated(ScrollClearing, fields, "body"), media)
    return await _continue(ex, validated(ScrollContinuation, fields, "body"), options, media)


async def _continue(
    ex: Exchange, request: ScrollContinuation, options: dict[str, str], media: MediaType
) -> web.StreamResponse:
    scrolls = ex.state.scrolls
    known = scrolls.keep_alive_of(request.scroll_id, ex.owner)
    if known is None:
        raise _unknown_scroll(request.scroll_id)
    keep_alive = scrolls.keep_alive(request.scroll) if request.scroll is not None else known
    body = dumps({"scroll_id": request.scroll_id, "scroll": f"{round(keep_alive * 1000)}ms"})
    call = Call("POST", ("_search", "scroll"), options, body, media.header(False))
    reply = await ex.state.upstream.send(call, ex.headers)
    if reply.status == 200 and (new_id := _scroll_id(reply)) is not None:
        scrolls.renewed(request.scroll_id, new_id, ex.owner, keep_alive)
    elif reply.status == 404:
        scrolls.closed(request.scroll_id)
    return from_engine(reply)


async def _clear(ex: Exchange, request: ScrollClearing, media: MediaType) -> web.StreamResponse:
    scrolls = ex.state.scrolls
    ids = [request.scroll_id] if isinstance(request.scroll_id, str) else request.scroll_id
    mine = [scroll_id for scroll_id in ids if scrolls.keep_alive_of(scroll_id, ex.owner) is not None]
    if not mine:
        # What the engine answers for ids it does not know.
        return answer({"succeeded": True, "num_freed": 0}, status=404)
    call = Call("DELETE", ("_search", "scroll"), {}, dumps({"scroll_id": mine}), media.header(False))
    reply = await ex.state.upstream.send(call, ex.headers)
    if reply.status in (200, 404):
        for scroll_id in mine:
            scrolls.closed(scroll_id)
    return from_engine(reply)


async def clear_remaining(state: BridgeState) -> None:
    """At shutdown: clear every scroll the bridge still remembers."""
    if remaining := state.scrolls.remaining():
        call = Call("DELETE", ("_search", "scroll"), {}, dumps({"scroll_id": remaining}), "application/json")
        await state.upstream.send(call, {})
