"""The server's error vocabulary.

Backends, validation and the scheduler raise these; the gRPC interceptor
(and later the HTTP bridge) is the one place that turns them into wire
statuses. They carry the status *name* rather than a grpc enum so that the
domain code does not depend on the transport.
"""

from __future__ import annotations


class RerankError(Exception):
    """Base class: `status` is a gRPC status code name."""

    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(RerankError):
    """The request is malformed; `field` names the offending field path."""

    status = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(RerankError):
    status = "NOT_FOUND"


class Internal(RerankError):
    """The server failed on a request; the message names an incident id that is in the log."""

    status = "INTERNAL"


def internal_message(incident: str) -> str:
    """What an INTERNAL answer says (proto/incidents.py makes the id and its log line)."""
    return f"internal error (incident {incident}, see the server log)"


class ResourceExhausted(RerankError):
    status = "RESOURCE_EXHAUSTED"


class Unavailable(RerankError):
    status = "UNAVAILABLE"


class DeadlineExceeded(RerankError):
    status = "DEADLINE_EXCEEDED"


class Cancelled(RerankError):
    status = "CANCELLED"


class Unimplemented(RerankError):
    status = "UNIMPLEMENTED"


class MissingDependency(RerankError):
    """An optional package a backend needs is not installed."""

    status = "FAILED_PRECONDITION"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'rerank-bridge[{extra}]'")
