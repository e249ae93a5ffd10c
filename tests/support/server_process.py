"""Starting `rerank-bridge serve` as its own process, as a user or an orchestrator would."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def command() -> str:
    script = Path(sys.executable).parent / "rerank-bridge"
    assert script.exists(), "the package is not installed: pip install -e '.[dev]'"
    return str(script)


def wait_for_port(process: subprocess.Popen[str], timeout: float = 120) -> int:
    """Reads the server's log until it says where it listens."""
    assert process.stderr is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        if match := re.search(r"listening on [^ ]+:(\d+)", line):
            return int(match.group(1))
    raise AssertionError("server did not report its port")


def wait_serving(address: str, timeout: float = 120) -> None:
    """Until health says SERVING; a server not listening yet (a container's published port
    answers before the server inside it binds) is asked again until the deadline."""
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            assert time.monotonic() < deadline, f"{address} never became SERVING"
            time.sleep(0.1)


def launch(*args: str, log: list[str] | None = None, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    """`rerank-bridge serve` on `port` (0: a free one), bound but perhaps still loading;
    its log lines go to `log` when given."""
    process = subprocess.Popen(
        [command(), "serve", "--port", str(port), *args], stderr=subprocess.PIPE, text=True
    )
    address = f"127.0.0.1:{wait_for_port(process)}"
    # Keep reading its log so a chatty server never blocks on a full pipe.
    threading.Thread(target=_drain, args=(process, log), daemon=True).start()
    return process, address


def start(*args: str, log: list[str] | None = None, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    """As launch(), once the server is SERVING."""
    process, address = launch(*args, log=log, port=port)
    wait_serving(address)
    return process, address


def _drain(process: subprocess.Popen[str], log: list[str] | None) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        if log is not None:
            log.append(line)
