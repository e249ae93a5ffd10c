"""What the connectors raise. Each error knows the HTTP status it stands for,
so the HTTP bridge and applications can answer like the engine would.

RERANKER_REPLIES is the one table of what each of the scoring server's gRPC statuses
means: the HTTP answer (the connectors and the bridge's rerank endpoints alike),
whether it is an outage (a request the server refuses is the caller's error, never
hidden by fail-open, while an outage may fall back to the first stage), and whether a
call moves on to the next target (SERVER_GONE, which the client's channel retries).

Refused is the general (status, type, reason, field) answer; EngineOutage names the
engine's failures (502, 504) as what they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def es_error_body(status: int, kind: str, reason: str, **details: Any) -> dict[str, Any]:
    """An error body in Elasticsearch's shape, which its clients parse."""
    cause = {"type": kind, "reason": reason, **details}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


class RerankBridgeError(Exception):
    status = 500
    kind = "rerank_exception"
    # The request field the error is about, where there is one.
    field: str | None = None

    def error_body(self) -> dict[str, Any]:
        """What an HTTP answer for this error carries: Elasticsearch's shape, with the field."""
        details = {"field": self.field} if self.field else {}
        return es_error_body(self.status, self.kind, str(self), **details)


class Refused(RerankBridgeError):
    """An error answered as it is given: HTTP status, Elasticsearch error type, reason and
    (optionally) the field. The bridge's own refusals are these."""

    def __init__(self, status: int, kind: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.kind, self.field = status, kind, field


class EngineOutage(Refused):
    """The engine did not answer usably: unreachable or unreadable (502), or too slow (504)."""


class RequestError(RerankBridgeError):
    """A rerank section or search option is malformed; `field` names it."""

    status = 400
    kind = "x_content_parse_exception"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class EngineError(RerankBridgeError):
    """The engine answered with an error: its status and body, unchanged."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"engine returned {status}: {body}")
        self.status = status
        self.body = body

    def error_body(self) -> dict[str, Any]:
        if isinstance(self.body, dict):
            return self.body
        return es_error_body(self.status, "engine_exception", str(self.body))


@dataclass(frozen=True)
class RerankerReply:
    """Everything a scoring server's gRPC status means to a client."""

    http_status: int
    # True: the reranker could not serve (a fail-open search keeps its first
    # stage); False: it refused this request, which is the caller's to fix.
    outage: bool
    # True: this server is gone (down, draining, shutting down): the call moves on to
    # the next target, and the channel retries it (client_transport).
    try_next: bool = False


RERANKER_REPLIES: dict[str, RerankerReply] = {
    "INVALID_ARGUMENT": RerankerReply(400, outage=False),
    "OUT_OF_RANGE": RerankerReply(400, outage=False),
    "NOT_FOUND": RerankerReply(404, outage=False),
    "UNIMPLEMENTED": RerankerReply(501, outage=False),
    "RESOURCE_EXHAUSTED": RerankerReply(429, outage=True),
    "UNAVAILABLE": RerankerReply(503, outage=True, try_next=True),
    "CANCELLED": RerankerReply(503, outage=True, try_next=True),
    "DEADLINE_EXCEEDED": RerankerReply(504, outage=True),
}
# INTERNAL, UNKNOWN, a misconfigured channel (UNAUTHENTICATED, ...): the server failed.
SERVER_FAILED = RerankerReply(502, outage=True)
# The statuses after which a call tries the next target.
SERVER_GONE = tuple(code for code, reply in RERANKER_REPLIES.items() if reply.try_next)


class RerankRejected(RerankBridgeError):
    """The scoring server refused the request (a window over its document
    limit, an unknown model): the caller's error, whatever fail-open says.
    `field` is the caller's name for what the server's message names."""

    kind = "illegal_argument_exception"

    def __init__(self, code: str, details: str, status: int, field: str | None) -> None:
        super().__init__(f"{field or 'request'}: the reranker refused it ({code}): {details}")
        self.code = code
        self.status = status
        self.field = field


class RerankUnavailable(RerankBridgeError):
    """The reranker failed (down, past its deadline, overloaded) and the search is fail-closed."""

    kind = "rerank_unavailable_exception"

    def __init__(self, code: str, details: str, status: int = 503) -> None:
        super().__init__(f"reranker {code}: {details}")
        self.code = code
        self.details = details
        self.status = status


_SERVER_FIELD = re.compile(r"([\w.\[\]]+): ")


def reranker_error(
    code: str, details: str, caller_fields: Mapping[str, str] | None = None
) -> RerankRejected | RerankUnavailable:
    """The error a failed scoring call stands for, by its gRPC status name.
    The server's messages start with the field they refuse ("documents: ...");
    `caller_fields` renames it to what the caller set (documents -> rank_window_size)."""
    reply = RERANKER_REPLIES.get(code, SERVER_FAILED)
    if reply.outage:
        return RerankUnavailable(code, details, reply.http_status)
    named = _SERVER_FIELD.match(details)
    field = named.group(1) if named else None
    if field is not None and caller_fields:
        field = caller_fields.get(field, field)
    return RerankRejected(code, details, reply.http_status, field)
