"""A TCP relay between the bridge and a real engine that writes down the
request line of every HTTP request passing through: what the engine was
actually asked, byte for byte, whatever the bridge meant to send."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from urllib.parse import urlsplit


class RequestLines:
    """Splits an HTTP/1.1 request stream into requests (Content-Length or chunked bodies)."""

    def __init__(self, record: Callable[[str, str], None]) -> None:
        self.record = record
        self.buffer = b""
        self.body_left = 0
        self.chunked = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.body_left:
                taken = min(self.body_left, len(self.buffer))
                self.buffer, self.body_left = self.buffer[taken:], self.body_left - taken
                if self.body_left:
                    return
            if self.chunked:
                line_end = self.buffer.find(b"\r\n")
                if line_end < 0:
                    return
                size = int(self.buffer[:line_end].split(b";")[0], 16)
                self.buffer = self.buffer[line_end + 2 :]
                self.body_left = size + 2  # the chunk and its CRLF
                if size == 0:
                    self.chunked = False  # the last chunk's CRLF ends the request (no trailers sent)
                continue
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1").split("\r\n")
            self.buffer = self.buffer[head_end + 4 :]
            method, target, _ = head[0].split(" ", 2)
            self.record(method, target)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            self.chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            self.body_left = int(headers.get("content-length", "0"))


class EngineTap:
    def __init__(self, engine_url: str) -> None:
        parts = urlsplit(engine_url)
        self.engine = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self.url = ""

    def __enter__(self) -> EngineTap:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    def _record(self, method: str, target: str) -> None:
        with self._lock:
            self._requests.append((method, target))

    def taken(self) -> list[tuple[str, str]]:
        """The requests recorded since the last call."""
        with self._lock:
            taken, self._requests = self._requests, []
        return taken

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)
        engine_reader, engine_writer = await asyncio.open_connection(*self.engine)
        lines = RequestLines(self._record)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await source.read(65536):
                    if upstream:
                        lines.feed(data)
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pump(reader, engine_writer, True), pump(engine_reader, writer, False))
