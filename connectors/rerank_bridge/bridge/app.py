"""The HTTP bridge (`rerank-bridge proxy`): an application points its engine
URL here and gets reranked searches back in the engine's own shape.

This module only wires things: every request goes through `dispatch`, which
checks the API key, decodes and routes the target (boundary.py, the security
boundary) and calls the route's handler:
- GET|HEAD /, unreranked searches, `_count`, `_field_caps`, `_validate/query`,
  `_explain`, HEAD /{index}, `allow:` calls: passthrough.py
- scrolls and points in time: cursors.py
- GET|POST /_search, /{index}/_search: searches.py; /_msearch, /{index}/_msearch: msearch.py
- POST /v1/rerank (Jina) and /v2/rerank (Cohere v2): rerank_api.py
- GET /ui, /ui/compare: ui.py; GET /metrics: Prometheus
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rerank_bridge.bridge import cursors, msearch, passthrough, rerank_api, searches, ui
from rerank_bridge.bridge.boundary import (
    engine_request_id,
    forwarded_headers,
    parse_target,
    route_for,
)
from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.bridge.connection_limit import LimitedSite
from rerank_bridge.bridge.contexts import owner_of
from rerank_bridge.bridge.exchange import STATE, BridgeState, Exchange
from rerank_bridge.bridge.http_log import SERVER_LOG
from rerank_bridge.bridge.middleware import REQUEST_ID, ROUTE, every_answer
from rerank_bridge.bridge.scopes import Scope
from rerank_bridge.bridge.upstream import Upstream
from rerank_bridge.search.client import AsyncRerankClient
from rerank_bridge.search.errors import Refused

log = logging.getLogger("rerank_bridge.bridge")
CONFIG: web.AppKey[BridgeConfig] = web.AppKey("config", BridgeConfig)


async def metrics(ex: Exchange) -> web.StreamResponse:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


HANDLERS: dict[str, Callable[[Exchange], Awaitable[web.StreamResponse]]] = {
    "root": passthrough.root,
    "forwarded": passthrough.forwarded,
    "read": passthrough.read,
    "scroll": cursors.scroll,
    "pit_open": cursors.pit_open,
    "pit_close": cursors.pit_close,
    "search": searches.search,
    "msearch": msearch.msearch,
    "rerank_v1": rerank_api.handler("jina"),
    "rerank_v2": rerank_api.handler("cohere"),
    "metrics": metrics,
    "ui": ui.page,
    "ui_compare": ui.compare,
}


def _caller_key(request: web.Request, config: BridgeConfig) -> str:
    """The caller's API key ("" when none is configured); 401 when it is missing or
    unknown. Where the engine checks callers' credentials, their Authorization."""
    if config.engine_credentials == "caller":
        return request.headers.get("Authorization", "")
    keys = config.known_keys
    if not keys:
        return ""
    header = request.headers.get("Authorization", "")
    given = next(
        (header[len(scheme) :].strip() for scheme in ("Bearer ", "ApiKey ") if header.startswith(scheme)),
        request.headers.get("X-Api-Key", ""),
    )
    if any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        return given
    raise Refused(401, "security_exception", "missing or unknown API key (Authorization: Bearer <key>)")


async def dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request[ROUTE] = "unauthenticated"
    config = state.config
    key = "" if request.raw_path == "/metrics" else _caller_key(request, config)
    request[ROUTE] = "invalid"
    target = parse_target(request.raw_path)
    request[ROUTE] = "refused"
    route = route_for(request.method, target, config.allow_rules)
    request[ROUTE] = route.name
    request_id = request[REQUEST_ID]
    headers = {**forwarded_headers(request.headers), **engine_request_id(request_id)}
    if config.engine_credentials == "caller" and key:
        headers["Authorization"] = key
    patterns = config.scope_of(key) if key else None
    scope = Scope(patterns) if patterns is not None else None
    if scope is not None and route.name == "forwarded":
        # An `allow:` call names no index the bridge could check against the scope.
        reason = f"a key with an index scope may not use {request.method} {target.path} (an allow: rule)"
        raise Refused(403, "security_exception", reason, "path")
    exchange = Exchange(request, state, target, route, request_id, owner_of(key), headers, scope)
    return await HANDLERS[route.name](exchange)


async def _on_startup(app: web.Application) -> None:
    config = app[CONFIG]
    upstream = Upstream(config)
    await upstream.start()
    try:
        kind = config.engine_kind if config.engine_kind != "auto" else await upstream.engine_kind()
    except Exception as error:
        await upstream.close()
        raise RuntimeError(
            f"cannot reach the engine at {config.engine_url} to tell its kind: {error}"
        ) from error
    reranker = AsyncRerankClient(config.reranker, timeout=config.reranker_timeout)
    app[STATE] = BridgeState(config, upstream, reranker, *cursors.registries(config.limits), kind)
    log.info("bridge to %s (%s), reranker at %s", config.engine_url, kind, config.reranker)


async def _on_cleanup(app: web.Application) -> None:
    state = app[STATE]
    with contextlib.suppress(Exception):  # the engine may be gone: its contexts expire anyway
        await cursors.close_remaining(state)
    await state.upstream.close()
    await state.reranker.close()


def build_app(config: BridgeConfig) -> web.Application:
    app = web.Application(middlewares=[every_answer], client_max_size=config.limits.max_body_bytes)
    app[CONFIG] = config
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    # One route: the boundary decides, from the raw target, what a request is.
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def ssl_context(config: BridgeConfig) -> ssl.SSLContext | None:
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key or None)
    return context


async def start_serving(config: BridgeConfig, shutdown_timeout: float = 20.0) -> web.AppRunner:
    """The bridge listening on its configured address, with at most
    `limits.max_connections` connections open. Stop it with `runner.cleanup()`."""
    # No aiohttp access log: it would write the raw request target; every_answer logs each request.
    runner = web.AppRunner(
        build_app(config), access_log=None, logger=SERVER_LOG, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    limit = config.limits.max_connections
    await LimitedSite(runner, config.host, config.port, ssl_context(config), limit).start()
    return runner


def run(config: BridgeConfig) -> None:
    async def serve() -> None:
        runner = await start_serving(config)
        log.info("listening on %s:%d", config.host, config.port)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        await runner.cleanup()

    asyncio.run(serve())
