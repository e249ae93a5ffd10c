# Generated from _async/client.py by `python connectors/generate_sync.py`: edit that file.
"""The rerank.v1 gRPC client.

It speaks in plain Python types (ids and texts in, ranked ids and scores out;
`client_messages`) so callers never handle protobuf messages, and it keeps one
channel per target for its lifetime: open one per application, not per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from rerank_bridge.search import client_messages as messages
from rerank_bridge.search.client_messages import ModelInfo, Reranking
from rerank_bridge.search.client_transport import (
    Addresses,
    Targets,
    Tls,
    call_metadata,
    last_failure,
    unless_gone,
)
from rerank_bridge.search.settings import ChunkingSettings


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
        self._targets = Targets(grpc, address, max_message_bytes, tls)

    def _call(self, method: str, request: Any, timeout: float | None, request_id: str | None) -> Any:
        failure: grpc.RpcError | None = None
        for stub, left in self._targets.attempts(timeout or self.timeout):
            try:
                return getattr(stub, method)(request, timeout=left, metadata=call_metadata(request_id))
            except grpc.RpcError as error:
                failure = unless_gone(error)
        raise last_failure(failure)

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
        chunking: ChunkingSettings | None = None,
        return_passages: bool = False,
        embeddings: Mapping[str, Sequence[float]] | None = None,
        embeddings_model: str = "",
    ) -> Reranking:
        """Scores (id, text) pairs against the query; raises grpc.RpcError on failure.
        `model`, when given, must name the served model (else NOT_FOUND). `chunking`
        scores long documents as token windows; `return_passages` gives each result
        the passage its score came from. `embeddings`: stored vectors by document id,
        made by `embeddings_model`, which a bi-encoder of that name scores in place of
        the texts (each result's `source` says which were)."""
        request = messages.rerank_request(
            query, documents, top_n, instruction, max_document_tokens, model, chunking, return_passages
        )
        messages.attach_embeddings(request, embeddings or {}, embeddings_model)
        return messages.reranking(self._call("Rerank", request, timeout, request_id))

    def embed(
        self,
        texts: Sequence[str],
        timeout: float | None = None,
        request_id: str | None = None,
        input_type: str = "document",
    ) -> list[list[float]]:
        """`input_type`: "document" for text to index, "query" for text to search with;
        each gets the model's own prompt for it."""
        request = messages.embed_request(texts, input_type)
        response = self._call("Embed", request, timeout, request_id)
        return messages.embeddings(response)

    def model_info(self) -> ModelInfo:
        return messages.model_info(self._call("GetModelInfo", messages.model_info_request(), None, None))

    def close(self) -> None:
        for channel in self._targets.channels:
            channel.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
