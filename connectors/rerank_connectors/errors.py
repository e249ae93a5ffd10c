"""What the connectors raise. Each error knows the HTTP status it stands for,
so the HTTP bridge and applications can answer like the engine would."""

from __future__ import annotations

from typing import Any


class RerankBridgeError(Exception):
    status = 500


class RequestError(RerankBridgeError):
    """A rerank section or search option is malformed; `field` names it."""

    status = 400

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field

    def body(self) -> dict[str, Any]:
        """An Elasticsearch-style error body."""
        reason = str(self)
        cause = {"type": "x_content_parse_exception", "reason": reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


class EngineError(RerankBridgeError):
    """The engine answered with an error: its status and body, unchanged."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"engine returned {status}: {body}")
        self.status = status
        self.body = body


class RerankUnavailable(RerankBridgeError):
    """The reranker failed (down, past its deadline, refusing) and the search is fail-closed."""

    status = 503

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"reranker {code}: {details}")
        self.code = code
        self.details = details
