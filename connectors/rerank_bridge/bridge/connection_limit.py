"""A cap on the bridge's open connections.

aiohttp accepts every connection and has no limit of its own; a caller that
opens thousands (each trickling a body until its timeout) would hold the
bridge's sockets and memory. Past `max_connections`, a new connection is
answered 503 with an Elasticsearch-shaped body and closed at once, so that
clients retry elsewhere; the connections already open are served as before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from rerank_bridge.search.errors import es_error_body

_BODY = json.dumps(
    es_error_body(503, "too_many_connections_exception", "rerank-bridge holds its limit of open connections")
).encode()
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class _Busy(asyncio.Protocol):
    """Answers 503 and half-closes at once, then reads (and drops) what the client
    still sends until it closes too, for at most a second: closing a socket with
    unread bytes would reset the connection, and the client could lose the answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.write_eof()
        asyncio.get_running_loop().call_later(1.0, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the transport closes itself


def limited(server: web.Server, max_connections: int) -> Callable[[], asyncio.Protocol]:
    """A protocol factory for `loop.create_server`: aiohttp's own handler while
    fewer than `max_connections` connections are open, else one that answers 503.
    (Connections accepted in the same loop step are counted once registered, so
    a burst may pass the limit by what the kernel accepted at once.)"""

    def protocol() -> asyncio.Protocol:
        if len(server.connections) >= max_connections:
            return _Busy()
        return server()

    return protocol


class LimitedSite(web.TCPSite):
    """aiohttp's TCP site with its protocol factory wrapped by `limited`."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, ssl_context: object, max_connections: int
    ):
        super().__init__(runner, host, port, ssl_context=ssl_context)  # type: ignore[arg-type]
        self.max_connections = max_connections

    async def start(self) -> None:
        # TCPSite.start with the wrapped factory (BaseSite.start registers the site with its runner).
        await web.BaseSite.start(self)
        server = self._runner.server
        assert isinstance(server, web.Server)
        self._server = await asyncio.get_running_loop().create_server(
            limited(server, self.max_connections),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
