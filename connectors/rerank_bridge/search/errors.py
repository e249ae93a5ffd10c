"""What the connectors raise. Each error knows the HTTP status it stands for,
so the HTTP bridge and applications can answer like the engine would.

RERANKER_REPLIES is the one table from the scoring server's gRPC statuses to
HTTP answers, used by the connectors and the bridge's rerank endpoints alike:
a request the server refuses is the caller's error (never hidden by
fail-open), while an outage may fall back to the first stage.
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

    def error_body(self) -> dict[str, Any]:
        """What an HTTP answer for this error carries."""
        return es_error_body(self.status, self.kind, str(self))


class RequestError(RerankBridgeError):
    """A rerank section or search option is malformed; `field` names it."""

    status = 400
    kind = "x_content_parse_exception"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field

    def error_body(self) -> dict[str, Any]:
        return es_error_body(self.status, self.kind, str(self), field=self.field)


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
    http_status: int
    # True: the reranker could not serve (a fail-open search keeps its first
    # stage); False: it refused this request, which is the caller's to fix.
    outage: bool


RERANKER_REPLIES: dict[str, RerankerReply] = {
    "INVALID_ARGUMENT": RerankerReply(400, outage=False),
    "OUT_OF_RANGE": RerankerReply(400, outage=False),
    "NOT_FOUND": RerankerReply(404, outage=False),
    "UNIMPLEMENTED": RerankerReply(501, outage=False),
    "RESOURCE_EXHAUSTED": RerankerReply(429, outage=True),
    "UNAVAILABLE": RerankerReply(503, outage=True),
    "CANCELLED": RerankerReply(503, outage=True),
    "DEADLINE_EXCEEDED": RerankerReply(504, outage=True),
}
# INTERNAL, UNKNOWN, a misconfigured channel (UNAUTHENTICATED, ...): the server failed.
SERVER_FAILED = RerankerReply(502, outage=True)


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

    def error_body(self) -> dict[str, Any]:
        details = {"field": self.field} if self.field else {}
        return es_error_body(self.status, self.kind, str(self), **details)


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
