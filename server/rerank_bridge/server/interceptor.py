"""The one place where exceptions become gRPC statuses, and where every RPC
is counted and logged with its request id.

RerankError subclasses carry their status name; anything else is a bug or a
model failure, answered INTERNAL with an id that also appears in the log, so
an operator can find the traceback without leaking it to the client. The
request id comes from the caller's `x-request-id` metadata (the HTTP bridge
forwards its own), or is made here.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from rerank_bridge.proto.incidents import report_incident
from rerank_bridge.proto.request_ids import METADATA_KEY, clean_request_id
from rerank_bridge.server.errors import InvalidArgument, RerankError, internal_message
from rerank_bridge.server.metrics import LATENCY, REQUESTS

log = logging.getLogger(__name__)
REQUEST_ID = contextvars.ContextVar("request_id", default="-")


def _request_id(context: aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == METADATA_KEY:
            return clean_request_id(str(value))
    return clean_request_id(None)


def cancelled_code(remaining: float | None, budget: float | None) -> str:
    """Why a handler was cancelled: its caller's deadline passed, or the caller left.
    The server's deadline starts when it reads the call, later than the caller's by the
    request's transit, so a caller cancelling at its own deadline reaches the server a
    little before the server's: the last quarter of the budget (at most a second)
    counts as the deadline."""
    if remaining is None:
        return "CANCELLED"
    slack = min(1.0, 0.25 * budget) if budget is not None else 0.0
    return "DEADLINE_EXCEEDED" if remaining <= slack else "CANCELLED"


def _guard(
    method: str,
    behavior: Callable[[Any, aio.ServicerContext], Awaitable[Any]],
    deserialize: Callable[[bytes], Any] | None,
) -> Callable[..., Awaitable[Any]]:
    async def guarded(raw: Any, context: aio.ServicerContext) -> Any:
        request_id = _request_id(context)
        REQUEST_ID.set(request_id)
        started, budget = time.perf_counter(), context.time_remaining()
        code = "OK"
        try:
            # Decoding happens here, not in gRPC, so that bytes that are not the
            # message answer INVALID_ARGUMENT instead of an UNKNOWN with a Python class.
            try:
                request = deserialize(raw) if deserialize is not None else raw
            except Exception:
                raise InvalidArgument("request", f"is not a valid {method} request message") from None
            return await behavior(request, context)
        except RerankError as error:
            code = error.status
            await context.abort(grpc.StatusCode[error.status], error.message)
        except (aio.AbortError, aio.UsageError):
            code = "ABORTED"
            raise
        except asyncio.CancelledError:
            # The client went away, or its deadline passed (gRPC cancels the handler then).
            code = cancelled_code(context.time_remaining(), budget)
            raise
        except Exception:
            code = "INTERNAL"
            incident = report_incident(log, f"internal error in {method}", request_id)
            await context.abort(grpc.StatusCode.INTERNAL, internal_message(incident))
        finally:
            elapsed = time.perf_counter() - started
            REQUESTS.labels(method, code).inc()
            LATENCY.labels(method, "total").observe(elapsed)
            log.info("request_id=%s method=%s code=%s ms=%.1f", request_id, method, code, elapsed * 1e3)

    return guarded


class StatusMappingInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        # Only our unary methods need it; health Watch and reflection streams pass as they are.
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        return grpc.unary_unary_rpc_method_handler(
            _guard(method, handler.unary_unary, handler.request_deserializer),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
