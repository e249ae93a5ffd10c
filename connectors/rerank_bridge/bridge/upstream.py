"""The one way the bridge reaches the engine.

Every engine call, forwarded or made for a reranked search, is a `Call` of
validated parts sent here: the URL comes from boundary.upstream_url, the
headers are the checked ones plus credentials (the bridge's own, or in
`credentials: caller` mode the caller's Authorization alone, so that the
engine's security decides; the bridge's own then serve only its own calls:
telling the engine's kind, resolving scopes, closing contexts at shutdown),
redirects are not followed, and the whole call has the configured timeout. An engine
that cannot be reached is a 502, one that does not answer in time a 504, both
with an Elasticsearch-shaped body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from rerank_bridge.bridge.bodies import COMPRESSORS, MediaType, dumps
from rerank_bridge.bridge.boundary import RETURNED_HEADERS, upstream_url
from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.search.dialects import kind_answering
from rerank_bridge.search.errors import EngineError, EngineOutage


@dataclass(frozen=True)
class Call:
    method: str
    segments: tuple[str, ...]
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    # The engine's headers a caller may see (boundary.RETURNED_HEADERS), in order.
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def document(self) -> Any:
        """The body of a reply the bridge must read, parsed. One that is not JSON
        is the engine's fault (502), whatever its status."""
        try:
            return json.loads(self.body)
        except ValueError:
            reason = (
                f"the engine answered {self.status} with a body that is not JSON ({self.content_type[:60]})"
            )
            raise EngineOutage(502, "engine_answer_exception", reason) from None


class Upstream:
    def __init__(self, config: BridgeConfig) -> None:
        self.base = config.engine_url.rstrip("/")
        self.callers_credentials = config.engine_credentials == "caller"
        self.timeout = config.engine_timeout
        self._auth_headers = (
            {"Authorization": f"ApiKey {config.engine_api_key}"}
            if config.engine_api_key
            else {"Authorization": aiohttp.encode_basic_auth(config.engine_username, config.engine_password)}
            if config.engine_username
            else {}
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self,
        call: Call,
        headers: Mapping[str, str],
        content_encoding: str | None = None,
        as_bridge: bool = False,
    ) -> Reply:
        """`headers`: the caller's checked headers; `content_encoding` (a COMPRESSORS key):
        re-applied to the rebuilt body; `as_bridge`: a call the bridge makes for itself."""
        assert self._session is not None, "Upstream.start() was not awaited"
        url = URL(upstream_url(self.base, call.segments, call.params), encoded=True)
        own = as_bridge or not self.callers_credentials
        outgoing = {**headers, **self._auth_headers} if own else dict(headers)
        body = call.body
        if body is not None:
            outgoing["Content-Type"] = call.content_type or "application/json"
            if content_encoding is not None:
                body = COMPRESSORS[content_encoding](body)
                outgoing["Content-Encoding"] = content_encoding
        try:
            async with self._session.request(
                call.method,
                url,
                data=body,
                headers=outgoing,
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                returned = tuple(
                    (name, value) for name in RETURNED_HEADERS for value in response.headers.getall(name, ())
                )
                content_type = response.headers.get("Content-Type", "application/json")
                return Reply(response.status, content_type, returned, payload)
        except TimeoutError:
            reason = f"the engine did not answer within the bridge's timeout of {self.timeout:g} s"
            raise EngineOutage(504, "engine_timeout_exception", reason) from None
        except aiohttp.ClientError as error:
            reason = f"the engine cannot be reached: {type(error).__name__}"
            raise EngineOutage(502, "engine_unreachable_exception", reason) from None

    async def engine_kind(self) -> str:
        reply = await self.send(Call("GET", ()), {}, as_bridge=True)
        product = dict(reply.headers).get("X-Elastic-Product")
        root = reply.document() if reply.status == 200 and product != "Elasticsearch" else None
        kind = kind_answering(product, root)
        if kind is None:
            raise RuntimeError(f"cannot tell which engine answers at {self.base}: set engine.kind")
        return kind


def add_returned(returned: list[tuple[str, str]], headers: Iterable[tuple[str, str]]) -> None:
    """The engine's returned headers of one more call, for an answer built from several
    (a hybrid search, an msearch): each warning counts, the rest once."""
    returned += [header for header in headers if header[0] == "Warning" or header not in returned]


class EngineThroughBridge:
    """The engine as the reranking connector calls it (`search(index, body,
    params)`), reached through the forwarder with the caller's URL parameters
    and headers. Keeps the headers the engine returned, for the answer."""

    def __init__(
        self, upstream: Upstream, headers: Mapping[str, str], params: Mapping[str, str], media: MediaType
    ) -> None:
        self.upstream = upstream
        self.headers = headers
        self.params = params
        self.media = media
        self.returned: list[tuple[str, str]] = []
        self.indices = MappingsThroughBridge(self)

    async def search(self, index: str, body: dict[str, Any], params: Mapping[str, str] | None = None) -> Any:
        segments = (index, "_search") if index else ("_search",)
        call = Call(
            "POST", segments, {**self.params, **(params or {})}, dumps(body), self.media.header(False)
        )
        reply = await self.upstream.send(call, self.headers)
        add_returned(self.returned, reply.headers)
        return _search_answer(_answer(reply))


class MappingsThroughBridge:
    """`indices.get_mapping` as the official clients have it: where stored vectors are
    asked for, the connector reads which model made them (search/stored_vectors.py),
    with the caller's own credentials, so an index the caller may not see stays unseen."""

    def __init__(self, engine: EngineThroughBridge) -> None:
        self.engine = engine

    async def get_mapping(self, index: str) -> Any:
        call = Call("GET", (index, "_mapping"), {}, None, None)
        return _answer(await self.engine.upstream.send(call, self.engine.headers))


def _answer(reply: Reply) -> Any:
    """The engine's answer to a call the connector made, parsed; an error status raises
    EngineError with the engine's own body, as the official clients raise theirs."""
    document = reply.document()
    if reply.status >= 300:
        raise EngineError(reply.status, document)
    return document


def _search_answer(document: Any) -> dict[str, Any]:
    """A successful search answer the connector can read (hits.hits, a list of
    objects); any other shape is the engine's fault (502), not the bridge's (500)."""
    hits = document.get("hits") if isinstance(document, dict) else None
    listed = hits.get("hits") if isinstance(hits, dict) else None
    if not isinstance(listed, list) or not all(isinstance(hit, dict) for hit in listed):
        reason = "the engine answered a search with no hits.hits list of objects"
        raise EngineOutage(502, "engine_answer_exception", reason)
    assert isinstance(document, dict)
    return document
