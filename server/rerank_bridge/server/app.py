"""The gRPC server: rerank.v1, grpc.health.v1 and reflection on one port.

It binds first and loads second: health answers NOT_SERVING until the models
are loaded and warmed up, then SERVING, so orchestrators route traffic only
to replicas that can answer.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from rerank_bridge.proto.v1 import rerank_pb2, rerank_pb2_grpc
from rerank_bridge.server import runtime
from rerank_bridge.server.config import ServerConfig
from rerank_bridge.server.interceptor import StatusMappingInterceptor
from rerank_bridge.server.metrics import QUEUE_DEPTH
from rerank_bridge.server.service import RerankerService

log = logging.getLogger(__name__)
SERVICE_NAME = rerank_pb2.DESCRIPTOR.services_by_name["Reranker"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; mutual TLS when a client CA is too."""
    if not config.tls_cert:
        if config.tls_key or config.tls_client_ca:
            raise ValueError("--tls-key and --tls-client-ca need --tls-cert")
        return None
    pair = (Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())
    client_ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


class RerankServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.runtime = runtime.Runtime()
        self.health = health.aio.HealthServicer()
        limit = config.max_message_bytes
        self.server = aio.server(
            interceptors=[StatusMappingInterceptor()],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        rerank_pb2_grpc.add_RerankerServicer_to_server(RerankerService(self.runtime), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = 0
        # Set when a scheduler's worker died: the process must stop serving.
        self.worker_died = asyncio.Event()

    async def start(self) -> int:
        """Binds and starts answering (NOT_SERVING); returns the bound port."""
        for service in ("", SERVICE_NAME):
            await self.health.set(service, NOT_SERVING)
        address = f"{self.config.host}:{self.config.port}"
        credentials = server_credentials(self.config)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        await self.server.start()
        log.info("listening on %s:%d", self.config.host, self.port)
        return self.port

    async def load(self) -> None:
        """Loads and warms up the models off the event loop, then reports SERVING."""
        loop = asyncio.get_running_loop()

        def on_worker_death() -> None:  # runs on the dying worker's thread
            loop.call_soon_threadsafe(lambda: loop.create_task(self._not_serving()))

        try:
            self.runtime.loaded = await asyncio.to_thread(runtime.load, self.config, on_worker_death)
        except Exception as error:
            self.runtime.failure = f"the model failed to load: {error}"
            log.exception("model load failed")
            raise
        QUEUE_DEPTH.set_function(self.queue_depth)
        for service in ("", SERVICE_NAME):
            await self.health.set(service, SERVING)
        log.info("serving %s", self.runtime.loaded.reranker.model_id)

    async def _not_serving(self) -> None:
        for service in ("", SERVICE_NAME):
            await self.health.set(service, NOT_SERVING)
        self.worker_died.set()

    def queue_depth(self) -> int:
        loaded = self.runtime.loaded
        return sum(s.depth for s in loaded.schedulers()) if loaded else 0

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await asyncio.to_thread(self.runtime.stop)


async def serve_forever(config: ServerConfig) -> None:
    """The `rerank-bridge serve` command: runs until SIGINT or SIGTERM, then stops
    gracefully (NOT_SERVING, new calls refused UNAVAILABLE, calls in flight get
    `shutdown_grace` seconds) and returns (exit 0). If a model worker dies it
    exits non-zero, so that an orchestrator restarts it."""
    server = RerankServer(config)
    await server.start()
    if config.metrics_port:
        start_http_server(config.metrics_port, addr=config.host)
        log.info("metrics on http://%s:%d/metrics", config.host, config.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loader = asyncio.create_task(server.load())
    stopper = asyncio.create_task(stop.wait())
    died = asyncio.create_task(server.worker_died.wait())
    await asyncio.wait({loader, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if loader.done() and loader.exception() is not None:
        await server.stop(0)
        raise SystemExit(f"rerank-bridge: {server.runtime.failure}")
    await asyncio.wait({stopper, died}, return_when=asyncio.FIRST_COMPLETED)
    loader.cancel()
    if died.done():
        await server.stop(0)
        raise SystemExit("rerank-bridge: a model worker died (see the log); exiting so that it is restarted")
    died.cancel()
    log.info("stopping: calls in flight get %d s", config.shutdown_grace)
    await server.stop(grace=config.shutdown_grace)


class BackgroundServer:
    """A server on its own thread and event loop: for tests, benchmarks and
    applications that embed the server in a synchronous program."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._bound = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="rerank-server", daemon=True)
        self.server: RerankServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 600.0) -> BackgroundServer:
        self._thread.start()
        self._bound.wait(timeout)
        if wait_ready:
            self.wait_ready(timeout)
        elif self._error is not None:
            raise RuntimeError("server failed to start") from self._error
        return self

    def wait_ready(self, timeout: float = 600.0) -> None:
        if not self._ready.wait(timeout):
            raise TimeoutError(f"server not ready after {timeout} s")
        if self._error is not None:
            raise RuntimeError("server failed to start") from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = RerankServer(self.config)
        try:
            self.port = await self.server.start()
        except BaseException as error:
            self._error = error
            self._bound.set()
            self._ready.set()
            return
        self._bound.set()
        try:
            await self.server.load()
        except Exception as error:
            self._error = error
        self._ready.set()
        await self._stop.wait()
        await self.server.stop(grace=1.0)
