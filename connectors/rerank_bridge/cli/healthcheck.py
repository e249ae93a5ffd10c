"""`rerank-bridge healthcheck`: whether the command a container runs is healthy.

A Dockerfile's HEALTHCHECK cannot see the command line the container was started
with, so a port written into it is wrong as soon as someone passes `--port`. This
reads the command and environment of process 1 (the container's ENTRYPOINT and
CMD), parses them with the subcommand's own parser, and asks the port it serves:
- `serve`: grpc.health.v1 must answer SERVING (NOT_SERVING while the model loads
  and while it drains after SIGTERM). Over TLS it checks only that the port
  completes a TLS handshake: a probe inside the container has no client
  certificate and no name the server's certificate is sure to carry.
- `proxy`: GET /metrics (the one path that needs no API key) must answer 200.
Exit status 0 when healthy, 1 otherwise, with one line saying what was asked.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

SUBCOMMANDS = ("serve", "proxy")
TIMEOUT = 3.0


def read_process(pid: int) -> tuple[list[str], dict[str, str]]:
    """The process's arguments from its subcommand on, and its environment."""
    argv = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
    start = next((i for i, arg in enumerate(argv) if arg in SUBCOMMANDS), None)
    if start is None:
        raise ValueError(f"process {pid} runs neither rerank-bridge serve nor proxy: {' '.join(argv)}")
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    environ = dict(entry.decode().partition("=")[::2] for entry in raw if b"=" in entry)
    return argv[start:], environ


def _loopback(host: str) -> str:
    """Where to reach a server listening on `host` from inside its own container."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


def _liveness_context() -> ssl.SSLContext:
    """TLS that checks liveness, not trust (see the module's docstring): loopback only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _tls_handshake(host: str, port: int) -> None:
    raw = socket.create_connection((host, port), timeout=TIMEOUT)
    with _liveness_context().wrap_socket(raw, server_hostname=host):
        pass


def check_serve(arguments: Sequence[str], environ: Mapping[str, str]) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from rerank_bridge.server import config as server_config

    parser = argparse.ArgumentParser(prog="rerank-bridge serve")
    server_config.add_arguments(parser, environ)
    config = server_config.from_namespace(parser.parse_args(list(arguments)))
    host, port = _loopback(config.host), config.port
    if config.tls_cert:
        _tls_handshake(host, port)
        return f"TLS handshake with {host}:{port}"
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT
            )
        except grpc.RpcError as error:
            raise RuntimeError(f"{host}:{port} does not answer: {error.code().name}") from None  # type: ignore[attr-defined]
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError(f"{host}:{port} answers {status}")
    return f"{host}:{port} answers {status}"


def check_proxy(arguments: Sequence[str], environ: Mapping[str, str]) -> str:
    from rerank_bridge.bridge import config as bridge_config

    parser = argparse.ArgumentParser(prog="rerank-bridge proxy")
    bridge_config.add_arguments(parser)
    config = bridge_config.from_namespace(parser.parse_args(list(arguments)), environ)
    scheme = "https" if config.tls_cert else "http"
    url = f"{scheme}://{_loopback(config.host)}:{config.port}/metrics"
    context = _liveness_context() if config.tls_cert else None
    with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as response:
        return f"GET {url} answers {response.status}"


def check(arguments: Sequence[str], environ: Mapping[str, str]) -> str:
    """Raises when unhealthy; returns what was asked and answered."""
    subcommand, rest = arguments[0], arguments[1:]
    checks = {"serve": check_serve, "proxy": check_proxy}
    if subcommand not in checks:
        raise ValueError(f"no health check for {subcommand!r}")
    return checks[subcommand](rest, environ)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pid", type=int, default=1, help="the process to check (default 1: the container's)"
    )


def run(args: argparse.Namespace) -> None:
    try:
        arguments, environ = read_process(args.pid)
        print(f"healthy: {check(arguments, environ)}")
    except Exception as error:
        print(f"unhealthy: {error}")
        raise SystemExit(1) from None
