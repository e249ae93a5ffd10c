"""Clients of the rerank.v1 gRPC service, sync and async.

They speak in plain Python types (ids and texts in, ranked ids and scores
out) so callers never handle protobuf messages, and they keep one channel
for their lifetime: open one per application, not per request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from rerank_bridge_proto.request_ids import METADATA_KEY
from rerank_bridge_proto.v1 import rerank_pb2 as pb
from rerank_bridge_proto.v1 import rerank_pb2_grpc


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


# Spread calls over every address the target resolves to (several replicas
# behind one DNS name, or an explicit "ipv4:host:port,host:port" list), and
# retry a call that found its server gone: scoring is idempotent.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": "rerank.v1.Reranker"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
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


def replicas(addresses: Sequence[str]) -> str:
    """One target for several servers given as IP:port (client-side round robin)."""
    return "ipv4:" + ",".join(addresses)


def _open_channel(module: Any, address: str, max_message_bytes: int, tls: Tls | None) -> Any:
    """A channel from `grpc` or `grpc.aio` (same call shapes), over TLS when asked."""
    options = _options(max_message_bytes)
    if tls is None:
        return module.insecure_channel(address, options=options)
    return module.secure_channel(address, tls.credentials(), options=options)


class RerankClient:
    """`address` is any gRPC target: "host:port", "dns:///name:port" (every
    replica behind the name), or replicas(["10.0.0.1:50051", ...])."""

    def __init__(
        self,
        address: str,
        timeout: float = 30.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        tls: Tls | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = _open_channel(grpc, address, max_message_bytes, tls)
        self._stub = rerank_pb2_grpc.RerankerStub(self._channel)

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
        response = self._stub.Rerank(request, timeout=timeout or self.timeout, metadata=_metadata(request_id))
        return _reranking(response)

    def embed(
        self, texts: Sequence[str], timeout: float | None = None, request_id: str | None = None
    ) -> list[list[float]]:
        request = pb.EmbedRequest(texts=list(texts))
        response = self._stub.Embed(request, timeout=timeout or self.timeout, metadata=_metadata(request_id))
        return [list(e.values) for e in response.embeddings]

    def model_info(self) -> pb.ModelInfo:
        info: pb.ModelInfo = self._stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=self.timeout)
        return info

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRerankClient:
    """The asyncio twin of RerankClient (same arguments, awaitable calls)."""

    def __init__(
        self,
        address: str,
        timeout: float = 30.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        tls: Tls | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = _open_channel(aio, address, max_message_bytes, tls)
        self._stub = rerank_pb2_grpc.RerankerStub(self._channel)

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
        metadata = _metadata(request_id)
        return _reranking(
            await self._stub.Rerank(request, timeout=timeout or self.timeout, metadata=metadata)
        )

    async def embed(
        self, texts: Sequence[str], timeout: float | None = None, request_id: str | None = None
    ) -> list[list[float]]:
        request = pb.EmbedRequest(texts=list(texts))
        response = await self._stub.Embed(
            request, timeout=timeout or self.timeout, metadata=_metadata(request_id)
        )
        return [list(e.values) for e in response.embeddings]

    async def model_info(self) -> pb.ModelInfo:
        info: pb.ModelInfo = await self._stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=self.timeout)
        return info

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
