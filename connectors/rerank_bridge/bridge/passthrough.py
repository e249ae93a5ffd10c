"""Calls the bridge hands to the engine without reranking: the root info call,
searches it does not rerank, the read-only search APIs (`_count`,
`_field_caps`, `_validate/query`, `_explain`, `HEAD /{index}`), and whatever
an `allow:` rule names. Targets are checked (and scoped, for a scoped key),
bodies re-serialised from their parsed form; the engine's answer comes back
as it was."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rerank_bridge.bridge import cursors
from rerank_bridge.bridge.bodies import MediaType, dumps, json_object, loads, ndjson_lines
from rerank_bridge.bridge.boundary import Target
from rerank_bridge.bridge.exchange import Exchange
from rerank_bridge.bridge.formats import from_engine
from rerank_bridge.bridge.upstream import Call
from rerank_bridge.search.errors import RequestError

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
    raw, media = await ex.read_body(ndjson_allowed=True)
    body, content_type = None, None
    if raw is not None:
        depth = ex.config.limits.max_json_depth
        if media.ndjson:
            body = b"".join(dumps(line) + b"\n" for line in ndjson_lines(raw, depth))
        else:
            body = dumps(loads(raw, "body", depth))
        content_type = media.header()
    call = Call(ex.method, ex.target.segments, engine_params(ex.target), body, content_type)
    return from_engine(await ex.state.upstream.send(call, ex.headers, ex.content_encoding))


async def read(ex: Exchange) -> web.StreamResponse:
    """A read-only search API on a checked index expression, with a strict JSON body."""
    params = engine_params(ex.target)
    raw, media = await ex.read_body()
    body = json_object(raw, "body", ex.config.limits.max_json_depth)
    ex.check_body(body)
    # HEAD /{index} asks whether an index exists, which engine security does not narrow.
    narrow = ex.method != "HEAD"
    index = await ex.indices(ex.route.index, params.get("expand_wildcards"), narrow=narrow)
    call = Call(
        ex.method, ex.route.segments(index), params, dumps(body) if body is not None else None, media.header()
    )
    return from_engine(await ex.state.upstream.send(call, ex.headers, ex.content_encoding))


async def search(
    ex: Exchange, index: str, body: dict[str, Any] | None, media: MediaType
) -> web.StreamResponse:
    """A search the bridge does not rerank (on `index`, already checked and scoped);
    one that opens a scroll or uses a point in time is the cursors' to run."""
    params = engine_params(ex.target)
    segments = ex.route.segments(index)
    if "scroll" in params or (body is not None and "pit" in body):
        return await cursors.search_with_context(ex, segments, params, body, media)
    call = Call(ex.method, segments, params, dumps(body) if body is not None else None, media.header())
    return from_engine(await ex.state.upstream.send(call, ex.headers, ex.content_encoding))
