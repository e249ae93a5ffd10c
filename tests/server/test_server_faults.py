"""The scoring server as its own process when things go wrong inside it: a
forward pass that raises, one that returns too few outputs, one that hangs
past the callers' deadlines, a worker thread that dies; callers that cancel
or run out of time; and SIGTERM with calls in flight. The fake backend's
fault words (backends/fake.py) make the model misbehave on cue."""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server.interceptor import cancelled_code
from support.server_process import start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, *args: str) -> None:
        self.log: list[str] = []
        self.metrics_port = free_port()
        self.process, self.address = start(*args, "--metrics-port", str(self.metrics_port), log=self.log)
        self.channel = grpc.insecure_channel(self.address)
        self.stub = rerank_pb2_grpc.RerankerStub(self.channel)

    def rerank(self, query: str, timeout: float = 10) -> Any:
        documents = [pb.Document(id=str(i), text=f"{query} passage {i}") for i in range(3)]
        return self.stub.Rerank(pb.RerankRequest(query=query, documents=documents), timeout=timeout)

    def failure(self, query: str, timeout: float = 10) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as raised:
            self.rerank(query, timeout)
        return raised.value

    def counted(self, code: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
        match = re.search(rf'rerank_server_requests_total{{code="{code}",method="Rerank"}} (\S+)', text)
        return float(match.group(1)) if match else 0.0

    def health(self) -> int:
        with grpc.insecure_channel(self.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            return int(check.status)

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server("--model", "fake?faults=on&hang_s=3", "--max-queue", "3")
    yield running
    running.close()


# A forward pass failing in the scheduler, and planning failing in the servicer, where the
# interceptor answers whatever escapes.
@pytest.mark.parametrize("fault", ["raiseerror", "shortoutput", "planerror"])
def test_a_failed_forward_pass_answers_internal_with_an_incident_and_the_server_carries_on(
    server: Server, fault: str
) -> None:
    error = server.failure(fault)
    assert error.code() == grpc.StatusCode.INTERNAL
    incident = re.search(r"incident (\w+)", error.details() or "")
    assert incident, error.details()
    time.sleep(0.2)
    assert any(f"incident={incident.group(1)}" in line for line in server.log)
    for _ in range(3):
        assert len(server.rerank("fine").results) == 3


def test_a_hung_pass_past_deadlines_frees_every_slot_and_counts_them_as_deadline_exceeded(
    server: Server,
) -> None:
    """The worker hangs 3 s. The hung call and two behind it fill the queue of three (a fourth
    is refused), all run out of time, and then a caller is admitted again at once, while the
    worker is still stuck, and answered when it is back."""
    before = server.counted("DEADLINE_EXCEEDED")
    with ThreadPoolExecutor(4) as pool:
        hung = pool.submit(server.failure, "hangforever", 0.5)
        time.sleep(0.1)
        behind = [pool.submit(server.failure, f"behind{i}", 0.5) for i in range(2)]
        time.sleep(0.1)
        assert server.failure("one too many", 5).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        dead = [hung.result(), *(f.result() for f in behind)]
    assert all(error.code() == grpc.StatusCode.DEADLINE_EXCEEDED for error in dead)
    assert len(server.rerank("patient", timeout=10).results) == 3
    assert server.counted("DEADLINE_EXCEEDED") == before + 3
    assert sum("code=DEADLINE_EXCEEDED" in line for line in server.log) >= 3


def test_a_cancelled_call_is_counted_and_logged_as_cancelled(server: Server) -> None:
    before = server.counted("CANCELLED")
    documents = [pb.Document(id="a", text="hangforever passage")]
    call = server.stub.Rerank.future(pb.RerankRequest(query="hangforever", documents=documents), timeout=30)
    time.sleep(0.3)
    call.cancel()
    deadline = time.monotonic() + 5
    while server.counted("CANCELLED") == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.counted("CANCELLED") == before + 1
    assert any("code=CANCELLED" in line for line in server.log)


def test_bytes_that_are_not_a_request_are_invalid_argument(server: Server) -> None:
    raw = server.channel.unary_unary("/rerank.v1.Reranker/Rerank")
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\xff\xff\xff not a protobuf", timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "request: is not a valid Rerank request message"


def test_a_dead_worker_turns_health_not_serving_and_the_process_exits_non_zero(server: Server) -> None:
    error = server.failure("killworker")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert server.process.wait(timeout=30) != 0
    assert any("NOT_SERVING" in line or "worker died" in line for line in server.log)


def test_sigterm_finishes_calls_in_flight_refuses_new_ones_and_exits_zero() -> None:
    slow = Server("--model", "fake?forward_s=1", "--shutdown-grace", "10")
    try:
        with ThreadPoolExecutor(3) as pool:
            in_flight = [pool.submit(slow.rerank, f"q{i}", 30) for i in range(3)]
            time.sleep(0.3)
            slow.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(grpc.RpcError) as refused:
                slow.rerank("late", 5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert all(len(f.result().results) == 3 for f in in_flight)
        assert slow.process.wait(timeout=30) == 0
    finally:
        slow.close()


def test_health_reports_not_serving_while_shutting_down() -> None:
    slow = Server("--model", "fake?forward_s=2", "--shutdown-grace", "10")
    try:
        assert slow.health() == health_pb2.HealthCheckResponse.SERVING
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(slow.rerank, "q", 30)
            time.sleep(0.3)
            slow.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            try:
                status = slow.health()
            except grpc.RpcError as error:  # the port may already refuse new calls
                status = (
                    health_pb2.HealthCheckResponse.NOT_SERVING
                    if error.code() == grpc.StatusCode.UNAVAILABLE
                    else -1
                )
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert len(in_flight.result().results) == 3
        assert slow.process.wait(timeout=30) == 0
    finally:
        slow.close()


@pytest.mark.parametrize(
    ("remaining", "budget", "code"),
    [
        (-0.01, 0.5, "DEADLINE_EXCEEDED"),
        # The caller's cancel at its own deadline, seen before the server's (which began later).
        (0.08, 0.5, "DEADLINE_EXCEEDED"),
        (0.3, 0.5, "CANCELLED"),
        (0.9, 30.0, "DEADLINE_EXCEEDED"),
        (29.7, 30.0, "CANCELLED"),
        (None, None, "CANCELLED"),  # no deadline at all: the caller left
    ],
)
def test_a_cancel_near_the_deadline_counts_as_the_deadline(
    remaining: float | None, budget: float | None, code: str
) -> None:
    assert cancelled_code(remaining, budget) == code
