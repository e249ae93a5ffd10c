"""The HTTP bridge (`rerank-bridge proxy`): an application points its engine
URL here and gets reranked searches back in the engine's own shape.

Routes: GET / ; GET|POST /{index}/_search ; POST /_msearch and
/{index}/_msearch ; POST /v1/rerank (Jina) and /v2/rerank (Cohere v2) ;
GET /metrics ; GET /ui. A search is reranked when its body carries a rerank
form (see request_forms) or its index matches a configured pattern; other
searches pass through untouched. Everything else is refused with 403 unless
the configuration allows it: the bridge never forwards writes or admin calls
by default.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rerank_connectors.bridge.config import BridgeConfig
from rerank_connectors.bridge.metrics import REQUESTS, STAGE_SECONDS
from rerank_connectors.bridge.rerank_api import cohere_response, jina_response, parse_call
from rerank_connectors.bridge.ui import UI_PAGE
from rerank_connectors.client import AsyncRerankClient
from rerank_connectors.connector import AsyncRerankingSearch, engine_errors
from rerank_connectors.dialects import response_body
from rerank_connectors.errors import EngineError, RequestError, RerankBridgeError
from rerank_connectors.pipeline import HIT_KEY, SUMMARY_KEY
from rerank_connectors.settings import RerankSettings

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GRPC_TO_HTTP = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "DEADLINE_EXCEEDED": 504,
}

CONFIG: web.AppKey[BridgeConfig] = web.AppKey("config", BridgeConfig)
SESSION: web.AppKey[ClientSession] = web.AppKey("session", ClientSession)
RERANKER: web.AppKey[AsyncRerankClient] = web.AppKey("reranker", AsyncRerankClient)
SEARCHER: web.AppKey[AsyncRerankingSearch] = web.AppKey("searcher", AsyncRerankingSearch)
ENGINE_KIND: web.AppKey[str] = web.AppKey("engine_kind", str)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


def es_error(status: int, kind: str, reason: str) -> web.Response:
    cause = {"type": kind, "reason": reason}
    return web.json_response({"error": {"root_cause": [cause], **cause}, "status": status}, status=status)


def _engine_headers(config: BridgeConfig) -> dict[str, str]:
    if config.engine_api_key:
        return {"Authorization": f"ApiKey {config.engine_api_key}"}
    return {}


def _engine_auth(config: BridgeConfig) -> Any:
    from aiohttp import BasicAuth

    return BasicAuth(config.engine_username, config.engine_password) if config.engine_username else None


async def _detect_kind(config: BridgeConfig, session: ClientSession) -> str:
    """OpenSearch says so at GET /; Elasticsearch marks every response with X-Elastic-Product."""
    async with session.get(
        config.engine_url + "/", auth=_engine_auth(config), headers=_engine_headers(config)
    ) as r:
        if r.headers.get("X-Elastic-Product") == "Elasticsearch":
            return "elasticsearch"
        body = await r.json(content_type=None) if r.status == 200 else {}
        if body.get("version", {}).get("distribution") == "opensearch":
            return "opensearch"
    raise RuntimeError(f"cannot tell which engine answers at {config.engine_url}: set engine.kind")


def _engine_client(config: BridgeConfig, kind: str) -> Any:
    auth = (config.engine_username, config.engine_password) if config.engine_username else None
    if kind == "elasticsearch":
        from elasticsearch import AsyncElasticsearch

        return AsyncElasticsearch(
            config.engine_url, basic_auth=auth, api_key=config.engine_api_key or None, request_timeout=60
        )
    from opensearchpy import AsyncOpenSearch

    headers = _engine_headers(config) or None
    return AsyncOpenSearch(config.engine_url, http_auth=auth, headers=headers, timeout=60)


async def _on_startup(app: web.Application) -> None:
    config = app[CONFIG]
    session = ClientSession(timeout=ClientTimeout(total=60))
    app[SESSION] = session
    kind = config.engine_kind if config.engine_kind != "auto" else await _detect_kind(config, session)
    app[ENGINE_KIND] = kind
    reranker = AsyncRerankClient(config.reranker, timeout=config.reranker_timeout)
    app[RERANKER] = reranker
    app[SEARCHER] = AsyncRerankingSearch(_engine_client(config, kind), reranker)
    log.info("bridge to %s (%s), reranker at %s", config.engine_url.split("@")[-1], kind, config.reranker)


async def _on_cleanup(app: web.Application) -> None:
    await app[SESSION].close()
    await app[RERANKER].close()
    await app[SEARCHER].engine.close()


@web.middleware
async def request_id_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    response = await handler(request)
    elapsed = time.perf_counter() - started
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    REQUESTS.labels(route, str(response.status)).inc()
    response.headers["X-Request-Id"] = request_id
    if request.app.get(ENGINE_KIND) == "elasticsearch":
        # Elasticsearch's clients refuse answers without the product header.
        response.headers["X-Elastic-Product"] = "Elasticsearch"
    log.info(
        "request_id=%s %s %s status=%d ms=%.1f",
        request_id,
        request.method,
        route,
        response.status,
        elapsed * 1e3,
    )
    return response


def _api_key(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    for scheme in ("Bearer ", "ApiKey "):
        if header.startswith(scheme):
            return header[len(scheme) :].strip()
    return request.headers.get("X-Api-Key", "")


@web.middleware
async def api_keys(request: web.Request, handler: Handler) -> web.StreamResponse:
    keys = request.app[CONFIG].api_keys
    if keys and request.path != "/metrics" and _api_key(request) not in keys:
        return es_error(401, "security_exception", "missing or unknown API key (Authorization: Bearer <key>)")
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except RequestError as error:
        return web.json_response(error.body(), status=400)
    except EngineError as error:
        body = error.body if isinstance(error.body, dict | list) else {"error": str(error.body)}
        return web.json_response(body, status=error.status)
    except RerankBridgeError as error:
        return es_error(error.status, "rerank_exception", str(error))
    except json.JSONDecodeError as error:
        return es_error(400, "parse_exception", f"request body is not JSON: {error}")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise RequestError("body", "must be a JSON object")
    return body


def _wants_rerank(body: dict[str, Any]) -> bool:
    ext = body.get("ext")
    return "retriever" in body or (isinstance(ext, dict) and bool({"rerank", "rerank_bridge"} & set(ext)))


async def _pass_through(request: web.Request, path: str, body: bytes | None = None) -> web.Response:
    config = request.app[CONFIG]
    headers = {**_engine_headers(config), "X-Request-Id": request[REQUEST_ID]}
    if content_type := request.headers.get("Content-Type"):
        headers["Content-Type"] = content_type
    data = body if body is not None else (await request.read() if request.can_read_body else None)
    url = config.engine_url + path
    async with request.app[SESSION].request(
        request.method, url, params=request.query, data=data, headers=headers, auth=_engine_auth(config)
    ) as upstream:
        payload = await upstream.read()
        content_type = upstream.headers.get("Content-Type", "application/json").split(";")[0]
        return web.Response(body=payload, status=upstream.status, content_type=content_type)


async def _search(request: web.Request, index: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Reranks when asked or configured; None means: pass it through."""
    configured = request.app[CONFIG].rerank_for(index)
    if configured is None and not _wants_rerank(body):
        return None
    searcher = request.app[SEARCHER]
    response = await searcher.search(index, body, rerank=configured, request_id=request[REQUEST_ID])
    for stage, ms in response.get(SUMMARY_KEY, {}).get("took_ms", {}).items():
        STAGE_SECONDS.labels(stage).observe(ms / 1e3)
    return response


async def search(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    index = request.match_info["index"]
    body = await _json_body(request)
    response = await _search(request, index, body)
    if response is None:
        return await _pass_through(request, request.path, json.dumps(body).encode() if body else None)
    STAGE_SECONDS.labels("total").observe(time.perf_counter() - started)
    return web.json_response(response)


def _error_item(error: RerankBridgeError) -> dict[str, Any]:
    """One failed search inside an msearch answer, as the engine writes it."""
    if isinstance(error, RequestError):
        return error.body()
    if isinstance(error, EngineError) and isinstance(error.body, dict):
        return {**error.body, "status": error.status}
    return {"error": {"type": "rerank_exception", "reason": str(error)}, "status": error.status}


async def _msearch_item(request: web.Request, header: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    index = header.get("index") or request.match_info.get("index")
    if not index:
        return RequestError("index", "each msearch header needs one (or the path does)").body()
    index = ",".join(index) if isinstance(index, list) else str(index)
    try:
        response = await _search(request, index, body)
        if response is None:
            with engine_errors():
                result = await request.app[SEARCHER].engine.search(index=index, body=body)
            response = response_body(result)
    except RerankBridgeError as error:
        return _error_item(error)
    return {**response, "status": 200}


async def msearch(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    lines = [line for line in (await request.text()).splitlines() if line.strip()]
    if len(lines) % 2:
        raise RequestError("body", "msearch needs header and body lines in pairs")
    pairs = [(json.loads(lines[i]), json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]
    responses = await asyncio.gather(*(_msearch_item(request, header, body) for header, body in pairs))
    took = round((time.perf_counter() - started) * 1e3)
    return web.json_response({"took": took, "responses": list(responses)})


def _rerank_endpoint(shape: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            call = parse_call(await request.json(), return_documents_default=shape == "jina")
        except RequestError as error:
            return web.json_response({"message": str(error)}, status=400)
        reranker = request.app[RERANKER]
        documents = [(str(i), text) for i, text in enumerate(call.documents)]
        try:
            ranking = await reranker.rerank(
                call.query, documents, top_n=call.top_n, request_id=request[REQUEST_ID]
            )
        except grpc.RpcError as error:
            status = GRPC_TO_HTTP.get(error.code().name, 503)
            return web.json_response({"message": error.details()}, status=status)
        if call.model and call.model != ranking.model:
            return web.json_response({"message": f"model {call.model!r} is not served here"}, status=404)
        respond = jina_response if shape == "jina" else cohere_response
        return web.json_response(respond(call, ranking))

    return handler


async def root(request: web.Request) -> web.StreamResponse:
    return await _pass_through(request, "/")


async def metrics(request: web.Request) -> web.StreamResponse:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def ui(request: web.Request) -> web.StreamResponse:
    return web.Response(text=UI_PAGE, content_type="text/html")


async def ui_compare(request: web.Request) -> web.StreamResponse:
    """First stage and reranked lists for the page, from one first-stage run."""
    index, query = request.query.get("index", ""), request.query.get("q", "")
    fields = [f for f in request.query.get("fields", "text").split(",") if f]
    if not index or not query:
        raise RequestError("q" if index else "index", "is required")
    body = {"query": {"multi_match": {"query": query, "fields": fields}}, "size": 10}
    settings = RerankSettings(fields=tuple(fields), query_text=query, rank_window_size=50)
    response = await request.app[SEARCHER].search(
        index, body, rerank=settings, request_id=request[REQUEST_ID]
    )
    hits = response["hits"]["hits"]

    def title(hit: dict[str, Any]) -> str:
        source = hit.get("_source", {})
        return str(next((source[f] for f in fields if source.get(f)), hit["_id"]))[:160]

    reranked = [
        {
            "id": h["_id"],
            "title": title(h),
            "score": h["_score"],
            "first_stage_rank": h[HIT_KEY]["first_stage_rank"],
        }
        for h in hits
    ]
    with engine_errors():
        first = response_body(await request.app[SEARCHER].engine.search(index=index, body=body))
    first_hits = first["hits"]["hits"]
    return web.json_response(
        {
            "reranked": reranked,
            "first_stage": [{"id": h["_id"], "title": title(h), "score": h["_score"]} for h in first_hits],
            "rerank": response.get(SUMMARY_KEY, {}),
        }
    )


async def forbidden(request: web.Request) -> web.StreamResponse:
    if request.app[CONFIG].allows(request.method, request.path):
        return await _pass_through(request, request.path)
    reason = f"rerank-bridge does not forward {request.method} {request.path}; allow it in its configuration"
    return es_error(403, "security_exception", reason)


def build_app(config: BridgeConfig) -> web.Application:
    app = web.Application(
        middlewares=[request_id_and_metrics, api_keys, errors], client_max_size=64 * 1024 * 1024
    )
    app[CONFIG] = config
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    app.router.add_get("/", root)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/ui", ui)
    app.router.add_get("/ui/compare", ui_compare)
    app.router.add_post("/v1/rerank", _rerank_endpoint("jina"))
    app.router.add_post("/v2/rerank", _rerank_endpoint("cohere"))
    app.router.add_post("/_msearch", msearch)
    app.router.add_post("/{index}/_msearch", msearch)
    app.router.add_route("GET", "/{index}/_search", search)
    app.router.add_route("POST", "/{index}/_search", search)
    app.router.add_route("*", "/{tail:.*}", forbidden)
    return app


def ssl_context(config: BridgeConfig) -> ssl.SSLContext | None:
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key or None)
    return context


def run(config: BridgeConfig) -> None:
    web.run_app(build_app(config), host=config.host, port=config.port, ssl_context=ssl_context(config))
