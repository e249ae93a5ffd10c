"""What a handler works with: the bridge's shared state and one checked request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aiohttp import web

from rerank_bridge.bridge.bodies import MediaType, content_encoding, media_type, read_bytes
from rerank_bridge.bridge.boundary import Route, Target
from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.bridge.contexts import ContextRegistry
from rerank_bridge.bridge.formats import AnswerFormat, accepted_format, answer_format
from rerank_bridge.bridge.scopes import Scope, refuse_reads_of_other_indices
from rerank_bridge.bridge.upstream import Call, Upstream
from rerank_bridge.search.client import AsyncRerankClient
from rerank_bridge.search.dialects import DIALECTS, Dialect
from rerank_bridge.search.errors import EngineError


@dataclass
class BridgeState:
    config: BridgeConfig
    upstream: Upstream
    reranker: AsyncRerankClient
    scrolls: ContextRegistry
    points_in_time: ContextRegistry
    kind: str = ""  # the engine's, known once started

    @property
    def dialect(self) -> Dialect:
        return DIALECTS[self.kind]


STATE: web.AppKey[BridgeState] = web.AppKey("state", BridgeState)


@dataclass
class Exchange:
    request: web.Request
    state: BridgeState
    target: Target
    route: Route
    request_id: str
    # Whose contexts (scrolls, points in time) this caller may touch: a hash of its credential.
    owner: str
    # The caller's checked headers for the engine, with the request id (and, where the
    # engine checks callers' credentials, the caller's Authorization).
    headers: dict[str, str]
    # The indices a scoped API key may read; None: every index the bridge's credentials reach.
    scope: Scope | None = None

    @property
    def config(self) -> BridgeConfig:
        return self.state.config

    @property
    def method(self) -> str:
        return self.request.method

    async def read_body(self, ndjson_allowed: bool = False) -> tuple[bytes | None, MediaType]:
        """The body (None when there is none) and its media type, which a body must name."""
        limits = self.config.limits
        raw = await read_bytes(self.request, limits.max_body_bytes, limits.body_timeout)
        if raw is None:
            return None, MediaType()
        return raw, media_type(self.request.headers.get("Content-Type"), ndjson_allowed)

    @property
    def content_encoding(self) -> str | None:
        """The caller's body encoding, re-applied to the rebuilt body the engine gets."""
        return content_encoding(self.request)

    @cached_property
    def answer_format(self) -> AnswerFormat:
        """The caller's format for an answer the bridge reads or builds (formats.py)."""
        return answer_format(self.target.params, self.request.headers.get("Accept"))

    def params_for_reading(self, params: Mapping[str, str]) -> dict[str, str]:
        """The URL parameters of an engine call whose answer the bridge reads: the
        caller's format is the bridge's to write (and one it cannot write is
        refused here, before the engine is called)."""
        _ = self.answer_format
        return {name: value for name, value in params.items() if name != "format"}

    def reading_headers(self, media: MediaType) -> dict[str, str]:
        """The headers for an engine call whose answer the bridge reads: JSON asked for."""
        # Kept where the engine will answer JSON to it (a compatible-with version stays).
        accept = self.headers.get("Accept", "")
        keep = bool(accept) and accepted_format(accept.split(",")[0]) == "json"
        wanted = accept if keep else media.header(False)
        return {**self.headers, "Accept": wanted}

    async def indices(
        self, expression: str, expand_wildcards: str | None, where: str = "index", narrow: bool = True
    ) -> str:
        """The index expression to forward: as given, or for a scoped key the in-scope
        names the scope rebuilt it into (scopes.py), never empty."""
        if self.scope is None:
            return expression
        expand = expand_wildcards or "open"
        return await self.scope.targets(expression, expand, self._resolve, where, narrow)

    async def _resolve(self, expression: str, expand_wildcards: str) -> dict[str, Any]:
        call = Call("GET", ("_resolve", "index", expression), {"expand_wildcards": expand_wildcards})
        reply = await self.state.upstream.send(call, {}, as_bridge=True)
        if reply.status == 404:
            return {}
        document = reply.document()
        if reply.status != 200 or not isinstance(document, dict):
            raise EngineError(reply.status, document)
        return document

    def check_body(self, body: Any, where: str = "body") -> None:
        """A scoped key's body may not read documents of other indices."""
        if self.scope is not None and body is not None:
            refuse_reads_of_other_indices(body, where)
