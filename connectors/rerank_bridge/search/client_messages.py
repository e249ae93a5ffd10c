"""The client's plain Python types, and their conversion to and from the rerank.v1
messages. Only the client modules import the generated messages: callers (the
connector, the bridge, evaluation) read these dataclasses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.search.settings import ChunkingSettings


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
    # A bi-encoder's: where the document's vector came from ("encoded", "stored",
    # "cached"); empty where the model read the text itself.
    source: str = ""


@dataclass(frozen=True)
class Usage:
    """What a request cost the server, in tokens, model sequences and chunks."""

    query_tokens: int = 0
    document_tokens: int = 0
    total_tokens: int = 0
    truncated_documents: int = 0
    sequences: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class Timings:
    queue_ms: float = 0.0
    compute_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class Reranking:
    """The server's answer: documents best first, with what it cost."""

    documents: list[RankedDocument]
    model: str
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    # Why stored embeddings sent along were encoded over instead; empty when none were.
    embeddings_fallback: str = ""


@dataclass(frozen=True)
class Limits:
    """What the server accepts in one request (0 where the server does not say)."""

    max_documents_per_request: int = 0
    max_documents_per_pass: int = 0
    max_query_tokens: int = 0
    max_document_tokens: int = 0
    context_length: int = 0
    max_message_bytes: int = 0
    max_embed_texts: int = 0
    max_chunks_per_document: int = 0
    max_chunks_per_request: int = 0


@dataclass(frozen=True)
class ModelInfo:
    """The served models (strings empty where an older server does not say)."""

    model_id: str = ""
    kind: str = ""
    dtype: str = ""
    device: str = ""
    limits: Limits = field(default_factory=Limits)
    embed_model_id: str = ""
    embed_dimensions: int = 0
    runtime: str = ""
    dtype_reason: str = ""
    model_digest: str = ""
    embed_model_digest: str = ""


Flat = TypeVar("Flat", Usage, Timings, Limits)


def _flat(kind: type[Flat], message: Any) -> Flat:
    """A message of scalar fields as the dataclass that mirrors it, field by field."""
    return kind(**{f.name: getattr(message, f.name) for f in fields(kind)})


def rerank_request(
    query: str,
    documents: Sequence[tuple[str, str]],
    top_n: int | None,
    instruction: str,
    max_document_tokens: int | None,
    model: str,
    chunking: ChunkingSettings | None,
    return_passages: bool,
) -> pb.RerankRequest:
    request = pb.RerankRequest(
        query=query,
        documents=[pb.Document(id=doc_id, text=text) for doc_id, text in documents],
        instruction=instruction,
        model=model,
        chunking=chunking_message(chunking),
        return_passages=return_passages,
    )
    if top_n is not None:
        request.top_n = top_n
    if max_document_tokens is not None:
        request.max_document_tokens = max_document_tokens
    return request


def attach_embeddings(
    request: pb.RerankRequest, embeddings: Mapping[str, Sequence[float]], model: str
) -> None:
    """Stored vectors onto the request's documents, by id."""
    if not embeddings:
        return
    if not model:
        raise ValueError("embeddings need embeddings_model: the model that made them")
    request.embeddings_model = model
    for document in request.documents:
        if (vector := embeddings.get(document.id)) is not None:
            document.embedding.extend(vector)


def chunking_message(chunking: ChunkingSettings | None) -> pb.Chunking | None:
    if chunking is None:
        return None
    message = pb.Chunking(enabled=True, aggregation=chunking.aggregation)
    for name in ("size", "overlap", "max_chunks"):
        if (value := getattr(chunking, name)) is not None:
            setattr(message, name, value)
    return message


def reranking(response: pb.RerankResponse) -> Reranking:
    ranked = [
        RankedDocument(
            r.index,
            r.id,
            r.score,
            r.truncated,
            Passage(r.best_passage.start, r.best_passage.end, r.best_passage.score)
            if r.HasField("best_passage")
            else None,
            EMBEDDING_SOURCES.get(r.source, ""),
        )
        for r in response.results
    ]
    return Reranking(
        ranked,
        response.model,
        _flat(Usage, response.usage),
        _flat(Timings, response.timings),
        response.embeddings_fallback,
    )


EMBEDDING_SOURCES = {
    pb.EMBEDDING_SOURCE_ENCODED: "encoded",
    pb.EMBEDDING_SOURCE_STORED: "stored",
    pb.EMBEDDING_SOURCE_CACHED: "cached",
}


EMBED_INPUT_TYPES = {"document": pb.EMBED_INPUT_TYPE_DOCUMENT, "query": pb.EMBED_INPUT_TYPE_QUERY}


def embed_request(texts: Sequence[str], input_type: str) -> pb.EmbedRequest:
    if input_type not in EMBED_INPUT_TYPES:
        raise ValueError(f"input_type must be one of {', '.join(EMBED_INPUT_TYPES)}, got {input_type!r}")
    return pb.EmbedRequest(texts=list(texts), input_type=EMBED_INPUT_TYPES[input_type])


def embeddings(response: pb.EmbedResponse) -> list[list[float]]:
    return [list(e.values) for e in response.embeddings]


def model_info_request() -> pb.GetModelInfoRequest:
    return pb.GetModelInfoRequest()


def model_info(message: pb.ModelInfo) -> ModelInfo:
    scalars = {f.name: getattr(message, f.name) for f in fields(ModelInfo) if f.name != "limits"}
    return ModelInfo(**scalars, limits=_flat(Limits, message.limits))
