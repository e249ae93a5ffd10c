"""What every answer of the bridge gets, whatever happened: an X-Request-Id
(the caller's when it is a clean token, else a new one), Elasticsearch's
product header in front of Elasticsearch, a count in /metrics, one log line,
and an Elasticsearch-shaped body for every error, an unexpected one included
(a 500 naming an incident id that is in the log with its traceback)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from rerank_bridge.bridge.exchange import STATE
from rerank_bridge.bridge.formats import answer
from rerank_bridge.bridge.metrics import REQUESTS
from rerank_bridge.proto.incidents import report_incident
from rerank_bridge.proto.request_ids import clean_request_id
from rerank_bridge.search.errors import RerankBridgeError, es_error_body

log = logging.getLogger("rerank_bridge.bridge")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
# The metrics label of the route a request took; set as dispatch learns it.
ROUTE: web.RequestKey[str] = web.RequestKey("route", str)
# What the bridge did with the searches of a request (searches.read_search).
OUTCOME: web.RequestKey[list[str]] = web.RequestKey("outcome", list)


def _unexpected(request_id: str) -> web.Response:
    incident = report_incident(log, "unexpected error", request_id)
    reason = f"internal error in rerank-bridge; incident {incident} is in its log"
    return answer(es_error_body(500, "internal_server_error", reason, incident=incident), status=500)


@web.middleware
async def every_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = clean_request_id(request.headers.get("X-Request-Id"))
    request[REQUEST_ID] = request_id
    request[ROUTE] = "invalid"
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except RerankBridgeError as error:
        response = answer(error.error_body(), status=error.status)
        if error.status == 408:  # the rest of the body may still be on its way: drop the connection
            response.force_close()
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="rerank-bridge"'
    except web.HTTPNotFound:
        # The one route matches every absolute path: what it misses is not one (`*`, ...).
        reason = "the request target must be an absolute path"
        body = es_error_body(400, "illegal_argument_exception", reason, field="path")
        response = answer(body, status=400)
    except web.HTTPException as error:  # aiohttp's own refusals
        response = answer(es_error_body(error.status, "http_exception", error.reason), status=error.status)
    except Exception:
        response = _unexpected(request_id)
    response.headers["X-Request-Id"] = request_id
    state = request.app.get(STATE)
    if state is not None and state.kind:
        response.headers.update(state.dialect.product_headers)
    route = request[ROUTE]
    REQUESTS.labels(route, str(response.status)).inc()
    outcomes: list[str] = request.get(OUTCOME, [])
    outcome = f" search={','.join(outcomes)}" if outcomes else ""
    log.info(
        "request_id=%s method=%s route=%s status=%d ms=%.1f%s",
        request_id,
        request.method,
        route,
        response.status,
        (time.perf_counter() - started) * 1e3,
        outcome,
    )
    return response
