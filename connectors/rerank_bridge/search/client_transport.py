"""How the clients reach the scoring servers: channels per target, the retry and
health-check policy, TLS, and the order one call tries its targets in. Shared by
the async client and the sync client generated from it."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from rerank_bridge.proto.request_ids import METADATA_KEY
from rerank_bridge.proto.v1 import rerank_pb2, rerank_pb2_grpc
from rerank_bridge.search.errors import SERVER_GONE

# The service's full name, which the health checks and the retry policy name.
SERVICE = rerank_pb2.DESCRIPTOR.services_by_name["Reranker"].full_name


def call_metadata(request_id: str | None) -> list[tuple[str, str]] | None:
    """The request id travels as gRPC metadata so the server's log lines carry it."""
    return [(METADATA_KEY, request_id)] if request_id else None


# A server gone, draining or with none of its replicas SERVING answers UNAVAILABLE; one
# shutting down fails a call that had not reached a handler with CANCELLED
# (grpc/grpc#41785). These clients never cancel a call themselves (a deadline is
# DEADLINE_EXCEEDED), so both mean the call was not scored and another server may take it.


# Spread calls over every address a target resolves to (several replicas behind
# one DNS name), send none to a server whose health (grpc.health.v1) is not
# SERVING (loading its model, or draining after SIGTERM), and retry a call that
# found its server gone: scoring is idempotent.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": SERVICE},
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": list(SERVER_GONE),
                },
            }
        ],
    }
)


def channel_options(max_message_bytes: int) -> list[tuple[str, int | str]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        # A server that went away is tried again within 2 s (gRPC's default backoff grows
        # to 120 s), so a restarted replica takes calls again soon after it is SERVING.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


@dataclass(frozen=True)
class Tls:
    """TLS to the scoring server: the CA that signed it, and for mutual TLS this client's pair."""

    ca: str
    cert: str = ""
    key: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


Addresses = str | Sequence[str]


class Targets:
    """The servers a client calls: one gRPC channel per target, each balancing round
    robin over what its name resolves to and re-resolving it when a server goes (so a
    replica restarted at a new address is found again). Calls take the targets in
    turn; `attempts()` gives the order for one call: the next target first, then the
    others, to fall back on when one answers that its server is gone (SERVER_GONE)."""

    def __init__(self, module: Any, addresses: Addresses, max_message_bytes: int, tls: Tls | None) -> None:
        targets = [addresses] if isinstance(addresses, str) else list(addresses)
        if not targets or not all(targets):
            raise ValueError(f"a reranker address is needed, got {addresses!r}")
        options = channel_options(max_message_bytes)
        self.channels = [
            module.insecure_channel(target, options=options)
            if tls is None
            else module.secure_channel(target, tls.credentials(), options=options)
            for target in targets
        ]
        self.stubs = [rerank_pb2_grpc.RerankerStub(channel) for channel in self.channels]
        self._turns = itertools.count()  # next() is atomic: safe across threads

    def attempts(self, timeout: float) -> Iterator[tuple[Any, float]]:
        """One call's tries: each target's stub, starting with the next target's, and the
        seconds left of the call's deadline, while some are left."""
        deadline = time.monotonic() + timeout
        first = next(self._turns) % len(self.stubs)
        for stub in self.stubs[first:] + self.stubs[:first]:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            yield stub, left


def unless_gone(error: grpc.RpcError) -> grpc.RpcError:
    """A failure the next target may not have (SERVER_GONE) is kept for later; any other
    is the answer and raised now."""
    if error.code().name not in SERVER_GONE:  # type: ignore[attr-defined]
        raise error
    return error


def last_failure(failure: grpc.RpcError | None) -> grpc.RpcError:
    """What a call that no target took raises: the last target's answer."""
    assert failure is not None  # the first target is always tried: its deadline is ahead
    return failure
