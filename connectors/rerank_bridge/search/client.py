"""Clients of the rerank.v1 gRPC service, sync and async.

They speak in plain Python types (ids and texts in, ranked ids and scores
out) so callers never handle protobuf messages, and they keep one channel
for their lifetime: open one per application, not per request.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from rerank_bridge.proto.request_ids import METADATA_KEY
from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc


@dataclass(frozen=True)
class Passage:
    """The span of a document's text its score came from: text[start:end] (code points)."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class RankedDocument:
    index: int
    id: str
    score: float
    truncated: bool
    passage: Passage | None = None


@dataclass(frozen=True)
class Reranking:
    """The server's answer: documents best first, with what it cost."""

    documents: list[RankedDocument]
    model: str
    usage: pb.Usage
    timings: pb.Timings


def _request(
    query: str,
    documents: Sequence[tuple[str, str]],
    top_n: int | None,
    instruction: str,
    max_document_tokens: int | None,
    model: str,
    chunking: pb.Chunking | None = None,
    return_passages: bool = False,
) -> pb.RerankRequest:
    request = pb.RerankRequest(
        query=query,
        documents=[pb.Document(id=doc_id, text=text) for doc_id, text in documents],
        instruction=instruction,
        model=model,
        chunking=chunking,
        return_passages=return_passages,
    )
    if top_n is not None:
        request.top_n = top_n
    if max_document_tokens is not None:
        request.max_document_tokens = max_document_tokens
    return request


def _reranking(response: pb.RerankResponse) -> Reranking:
    ranked = [
        RankedDocument(
            r.index,
            r.id,
            r.score,
            r.truncated,
            Passage(r.best_passage.start, r.best_passage.end, r.best_passage.score)
            if r.HasField("best_passage")
            else None,
        )
        for r in response.results
    ]
    return Reranking(ranked, response.model, response.usage, response.timings)


def _metadata(request_id: str | None) -> list[tuple[str, str]] | None:
    """The request id travels as gRPC metadata so the server's log lines carry it."""
    return [(METADATA_KEY, request_id)] if request_id else None


SERVICE = pb.DESCRIPTOR.services_by_name["Reranker"].full_name
# A server gone, draining or with none of its replicas SERVING answers UNAVAILABLE; one
# shutting down fails a call that had not reached a handler with CANCELLED
# (grpc/grpc#41785). These clients never cancel a call themselves (a deadline is
# DEADLINE_EXCEEDED), so both mean the call was not scored and another server may take it.
SERVER_GONE = ("UNAVAILABLE", "CANCELLED")


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


def _options(max_message_bytes: int) -> list[tuple[str, int | str]]:
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


class _Targets:
    """The servers a client calls: one gRPC channel per target, each balancing round
    robin over what its name resolves to and re-resolving it when a server goes (so a
    replica restarted at a new address is found again). Calls take the targets in
    turn; `attempts()` gives the order for one call: the next target first, then the
    others, to fall back on when one answers that its server is gone (SERVER_GONE)."""

    def __init__(self, module: Any, addresses: Addresses, max_message_bytes: int, tls: Tls | None) -> None:
        targets = [addresses] if isinstance(addresses, str) else list(addresses)
        if not targets or not all(targets):
            raise ValueError(f"a reranker address is needed, got {addresses!r}")
        options = _options(max_message_bytes)
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


def _unless_gone(error: grpc.RpcError) -> grpc.RpcError:
    """A failure the next target may not have (SERVER_GONE) is kept for later; any other
    is the answer and raised now."""
    if error.code().name not in SERVER_GONE:  # type: ignore[attr-defined]
        raise error
    return error


def _last(failure: grpc.RpcError | None) -> grpc.RpcError:
    """What a call that no target took raises: the last target's answer."""
    assert failure is not None  # the first target is always tried: its deadline is ahead
    return failure


class RerankClient:
    """`address`: one gRPC target ("host:port", or "dns:///name:port" for every
    replica behind a name), or several, called in turn: a call whose target answers
    that its server is gone (SERVER_GONE: down, draining, shutting down, or none of its
    servers SERVING) moves on to the next target within the call's deadline."""

    def __init__(
        self,
        address: Addresses,
        timeout: float = 30.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        tls: Tls | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._targets = _Targets(grpc, address, max_message_bytes, tls)

    def _call(self, method: str, request: Any, timeout: float | None, request_id: str | None) -> Any:
        failure: grpc.RpcError | None = None
        for stub, left in self._targets.attempts(timeout or self.timeout):
            try:
                return getattr(stub, method)(request, timeout=left, metadata=_metadata(request_id))
            except grpc.RpcError as error:
                failure = _unless_gone(error)
        raise _last(failure)

    def rerank(
        self,
        query: str,
        documents: Sequence[tuple[str, str]],
        top_n: int | None = None,
        instruction: str = "",
        max_document_tokens: int | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
        model: str = "",
        chunking: pb.Chunking | None = None,
        return_passages: bool = False,
    ) -> Reranking:
        """Scores (id, text) pairs against the query; raises grpc.RpcError on failure.
        `model`, when given, must name the served model (else NOT_FOUND). `chunking`
        scores long documents as token windows; `return_passages` gives each result
        the passage its score came from."""
        request = _request(
            query, documents, top_n, instruction, max_document_tokens, model, chunking, return_passages
        )
        return _reranking(self._call("Rerank", request, timeout, request_id))

    def embed(
        self, texts: Sequence[str], timeout: float | None = None, request_id: str | None = None
    ) -> list[list[float]]:
        response = self._call("Embed", pb.EmbedRequest(texts=list(texts)), timeout, request_id)
        return [list(e.values) for e in response.embeddings]

    def model_info(self) -> pb.ModelInfo:
        info: pb.ModelInfo = self._call("GetModelInfo", pb.GetModelInfoRequest(), None, None)
        return info

    def close(self) -> None:
        for channel in self._targets.channels:
            channel.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRerankClient:
    """The asyncio twin of RerankClient (same arguments, awaitable calls)."""

    def __init__(
        self,
        address: Addresses,
        timeout: float = 30.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        tls: Tls | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._targets = _Targets(aio, address, max_message_bytes, tls)

    async def _call(self, method: str, request: Any, timeout: float | None, request_id: str | None) -> Any:
        failure: grpc.RpcError | None = None
        for stub, left in self._targets.attempts(timeout or self.timeout):
            try:
                return await getattr(stub, method)(request, timeout=left, metadata=_metadata(request_id))
            except grpc.RpcError as error:
                failure = _unless_gone(error)
        raise _last(failure)

    async def rerank(
        self,
        query: str,
        documents: Sequence[tuple[str, str]],
        top_n: int | None = None,
        instruction: str = "",
        max_document_tokens: int | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
        model: str = "",
        chunking: pb.Chunking | None = None,
        return_passages: bool = False,
    ) -> Reranking:
        request = _request(
            query, documents, top_n, instruction, max_document_tokens, model, chunking, return_passages
        )
        return _reranking(await self._call("Rerank", request, timeout, request_id))

    async def embed(
        self, texts: Sequence[str], timeout: float | None = None, request_id: str | None = None
    ) -> list[list[float]]:
        response = await self._call("Embed", pb.EmbedRequest(texts=list(texts)), timeout, request_id)
        return [list(e.values) for e in response.embeddings]

    async def model_info(self) -> pb.ModelInfo:
        info: pb.ModelInfo = await self._call("GetModelInfo", pb.GetModelInfoRequest(), None, None)
        return info

    async def close(self) -> None:
        for channel in self._targets.channels:
            await channel.close()

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
