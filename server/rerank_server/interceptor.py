"""The one place where exceptions become gRPC statuses.

RerankError subclasses carry their status name; anything else is a bug or a
model failure, answered INTERNAL with an id that also appears in the log, so
an operator can find the traceback without leaking it to the client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from rerank_server.errors import RerankError

log = logging.getLogger(__name__)


def _guard(behavior: Callable[[Any, aio.ServicerContext], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except RerankError as error:
            await context.abort(grpc.StatusCode[error.status], error.message)
        except (aio.AbortError, aio.UsageError):
            raise
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("internal error %s", incident)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error (incident {incident}, see server log)"
            )

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
        return grpc.unary_unary_rpc_method_handler(
            _guard(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
