"""What a handler works with: the bridge's shared state and one checked request,
and the two ways an answer is made (the engine's reply as it came, or JSON
the bridge built)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rerank_connectors.bridge.bodies import content_encoding, read_bytes
from rerank_connectors.bridge.boundary import Route, Target
from rerank_connectors.bridge.config import BridgeConfig
from rerank_connectors.bridge.scrolls import ScrollRegistry
from rerank_connectors.bridge.upstream import Reply, Upstream
from rerank_connectors.client import AsyncRerankClient
from rerank_connectors.dialects import Dialect, Elasticsearch, OpenSearch


@dataclass
class BridgeState:
    config: BridgeConfig
    upstream: Upstream
    reranker: AsyncRerankClient
    scrolls: ScrollRegistry
    kind: str = ""  # the engine's, known once started

    @property
    def dialect(self) -> Dialect:
        return Elasticsearch() if self.kind == "elasticsearch" else OpenSearch()


STATE: web.AppKey[BridgeState] = web.AppKey("state", BridgeState)


@dataclass
class Exchange:
    request: web.Request
    state: BridgeState
    target: Target
    route: Route
    request_id: str
    # Whose scroll contexts this caller may touch (a hash of its API key).
    owner: str
    # The caller's checked headers for the engine, with the request id.
    headers: dict[str, str]

    @property
    def config(self) -> BridgeConfig:
        return self.state.config

    @property
    def method(self) -> str:
        return self.request.method

    async def body(self) -> bytes | None:
        return await read_bytes(self.request, self.config.limits.max_body_bytes)

    @property
    def content_encoding(self) -> str | None:
        """The caller's body encoding, re-applied to the rebuilt body the engine gets."""
        return content_encoding(self.request)


def from_engine(reply: Reply) -> web.Response:
    """The engine's answer as it came: status, body bytes, content type and returned headers."""
    response = web.Response(status=reply.status, body=reply.body)
    response.headers["Content-Type"] = reply.content_type
    for name, value in reply.headers:
        response.headers.add(name, value)
    return response


def answer(
    body: Any, status: int = 200, pretty: bool = False, headers: Sequence[tuple[str, str]] = ()
) -> web.Response:
    """JSON the bridge built, with the engine's returned headers where it called the engine."""
    text = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None)
    response = web.Response(status=status, text=text, content_type="application/json")
    for name, value in headers:
        response.headers.add(name, value)
    return response
