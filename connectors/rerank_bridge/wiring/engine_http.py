"""The engine's REST API through its official client (either major), so TLS and
credentials are handled as the user's own client handles them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rerank_bridge.search.dialects import DIALECTS, engine_error, response_body

JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}


class WiringError(RuntimeError):
    """The engine refused a step, or lacks something the wiring needs; the message says which."""


@dataclass(frozen=True)
class EngineAnswer:
    status: int
    body: Any


@dataclass
class EngineHttp:
    kind: str
    client: Any

    def call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> EngineAnswer:
        """One request; an engine error raises WiringError naming the call, or gives
        a 404 EngineAnswer back when `missing_ok`."""
        try:
            raw = DIALECTS[self.kind].perform_request(self.client, method, path, body, JSON_HEADERS)
        except Exception as error:
            refused = engine_error(error)
            if refused is None:
                raise WiringError(f"{method} {path}: {error}") from error
            if missing_ok and refused.status == 404:
                return EngineAnswer(404, refused.body)
            raise WiringError(f"{method} {path} answered {refused.status}: {_short(refused.body)}") from error
        return EngineAnswer(200, response_body(raw) if raw else {})


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= 600 else text[:600] + "..."


def fingerprint(definition: Any) -> str:
    """A short digest of a whole definition, secrets included, so a changed key is
    seen as a change without the key itself being readable where it is stored."""
    canonical = json.dumps(definition, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
