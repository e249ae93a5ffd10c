"""Requests the HTTP server cannot parse, before any API key is read: each is
answered 400 and counted, and none writes an ERROR or a traceback to the log
(aiohttp's own handling would, so anyone could fill it)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from rerank_bridge.bridge.config import BridgeConfig
from support.bridge_runner import RunningBridge

MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9.9\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


@pytest.fixture(scope="module")
def bridge() -> Iterator[RunningBridge]:
    # No engine is called: its kind is given, and every request here fails before routing.
    config = BridgeConfig(
        engine_url="http://127.0.0.1:9",
        engine_kind="elasticsearch",
        reranker="127.0.0.1:9",
        api_keys=frozenset({"k"}),
    )
    with RunningBridge(config) as running:
        yield running


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def malformed_count() -> float:
    return REGISTRY.get_sample_value("rerank_bridge_malformed_requests_total") or 0.0


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_request_is_answered_400_counted_and_kept_out_of_the_error_log(
    bridge: RunningBridge, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    before = malformed_count()
    with caplog.at_level(logging.DEBUG):
        answer = raw_exchange(bridge.port, request_bytes)
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:80]
    assert malformed_count() == before + 1
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    quiet = [r for r in caplog.records if r.name == "rerank_bridge.bridge.http"]
    assert [r.getMessage() for r in quiet] and all(r.levelno == logging.DEBUG for r in quiet)


def test_a_well_formed_request_is_not_counted_as_malformed(bridge: RunningBridge) -> None:
    before = malformed_count()
    answer = raw_exchange(bridge.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 ")  # parsed, then refused for its missing key
    assert malformed_count() == before
