"""Runs the HTTP bridge on a free loopback port in a background thread."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from rerank_bridge.bridge.app import start_serving
from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.devtools.local_engines import free_port


class RunningBridge:
    def __init__(self, config: BridgeConfig) -> None:
        self.port = free_port()
        self.config = config.replace(host="127.0.0.1", port=self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def open_connections(self) -> int:
        assert self._runner is not None and self._runner.server is not None
        return len(self._runner.server.connections)

    def __enter__(self) -> RunningBridge:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        return self

    async def _start(self) -> None:
        # As `rerank-bridge proxy` serves: over TLS where the configuration names a
        # certificate, with its connection limit.
        self._runner = await start_serving(self.config)

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
