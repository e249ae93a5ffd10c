"""Long documents scored as token windows (chunks), and the passage each score came from.

A document is cut along its own tokens into windows of `size` tokens, each
sharing `overlap` tokens with the one before; a window that would end inside a
sentence ends instead after the last sentence end in its final quarter, where
there is one. The chunks, sliced from the text as sent, go to the model as the
candidates of one request in their documents' order, each document's chunks
together and in text order, so a listwise model reads them in one context and
packs them into blocks like documents. A document scores the `max` of its
chunks' scores (the best passage decides, as in Cohere's and Elasticsearch's
chunked reranking) or their `mean` (every part counts: for documents whose
relevance is spread over their length rather than in one place).

Passages are [start, end) code-point offsets into the text as sent: text[start:end]
is the chunk that was scored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rerank_bridge.server.backends.base import Backend, Plan
from rerank_bridge.server.domain import (
    Chunking,
    Document,
    Passage,
    RerankOutcome,
    RerankRequest,
    ScoredDocument,
)
from rerank_bridge.server.errors import InvalidArgument

SENTENCE_ENDS = frozenset(".!?…。！？")
# Re-tokenised on its own, a chunk can differ from its window by a token or two at
# the edges (BPE merges across the cut); the cap it is scored under leaves room so
# the model reads the whole slice.
EDGE_TOKENS = 16


@dataclass(frozen=True)
class Chunk:
    document: int
    start: int
    end: int


def windows(spans: list[tuple[int, int]], text: str, size: int, overlap: int, limit: int) -> list[range]:
    """Token windows over `spans` (the text's tokens as character spans), at most `limit`."""
    found: list[range] = []
    first = 0
    while first < len(spans) and len(found) < limit:
        end = min(first + size, len(spans))
        if end < len(spans):
            for last in range(end - 1, first + max(1, 3 * size // 4) - 1, -1):
                if text[spans[last][1] - 1] in SENTENCE_ENDS:
                    end = last + 1
                    break
        found.append(range(first, end))
        if end == len(spans):
            break
        first = max(end - overlap, first + 1)
    return found


def cut_into_chunks(backend: Backend, texts: list[str], chunking: Chunking) -> tuple[list[Chunk], list[bool]]:
    """Every text's chunks, in order, and whether text was left past the last one."""
    chunks: list[Chunk] = []
    truncated: list[bool] = []
    spans_of = backend.token_spans(texts, chunking.max_chunks * chunking.size)
    for index, (text, (spans, more)) in enumerate(zip(texts, spans_of, strict=True)):
        found = windows(spans, text, chunking.size, chunking.overlap, chunking.max_chunks)
        if not found:  # no token at all (punctuation a word model skips): the text as it is
            chunks.append(Chunk(index, 0, len(text)))
            truncated.append(False)
            continue
        chunks.extend(Chunk(index, spans[w[0]][0], spans[w[-1]][1]) for w in found)
        truncated.append(more or found[-1].stop < len(spans))
    return chunks, truncated


def _aggregate(scores: list[float], how: str) -> float:
    return max(scores) if how == "max" else sum(scores) / len(scores)


def plan_chunked(
    backend: Backend, request: RerankRequest, max_chunks_per_request: int
) -> Plan[RerankOutcome]:
    chunking = request.chunking
    assert chunking is not None
    if request.return_embeddings:
        raise InvalidArgument("return_embeddings", "cannot be combined with chunking (one vector per chunk)")
    texts = [document.text for document in request.documents]
    chunks, truncated = cut_into_chunks(backend, texts, chunking)
    if len(chunks) > max_chunks_per_request:
        raise InvalidArgument(
            "chunking.max_chunks",
            f"the documents make {len(chunks)} chunks; one request may make at most {max_chunks_per_request} "
            "(fewer documents, a larger chunking.size or a smaller chunking.max_chunks)",
        )
    inner_request = replace(
        request,
        documents=tuple(
            Document(f"{chunk.document}:{chunk.start}", texts[chunk.document][chunk.start : chunk.end])
            for chunk in chunks
        ),
        top_n=None,
        max_document_tokens=chunking.size + EDGE_TOKENS,
        chunking=None,
        return_passages=False,
    )
    inner = backend.plan_rerank(inner_request)

    def finish(outputs: list[Any]) -> RerankOutcome:
        scored_chunks = inner.finish(outputs)
        by_document: list[list[tuple[float, Chunk]]] = [[] for _ in texts]
        for chunk, scored in zip(chunks, scored_chunks.scored, strict=True):
            by_document[chunk.document].append((scored.score, chunk))
        documents = []
        for index, document in enumerate(request.documents):
            best_score, best = max(by_document[index], key=lambda pair: pair[0])
            passage = Passage(best.start, best.end, best_score) if request.return_passages else None
            score = _aggregate([score for score, _ in by_document[index]], chunking.aggregation)
            documents.append(ScoredDocument(index, document.id, score, truncated[index], passage=passage))
        usage = replace(scored_chunks.usage, truncated_documents=sum(truncated), chunks=len(chunks))
        return RerankOutcome(documents, usage)

    return Plan(inner.sequences, finish)


def plan_with_passages(backend: Backend, request: RerankRequest) -> Plan[RerankOutcome]:
    """Chunking off, passages asked for: each document's passage is the text the
    model read, the whole of it or its head up to the token cap (found while
    planning, with one more tokenisation, paid only when passages are asked for)."""
    inner = backend.plan_rerank(request)
    texts = [document.text for document in request.documents]
    heads = backend.token_spans(texts, request.max_document_tokens)
    ends = [
        spans[-1][1] if more and spans else len(text)
        for text, (spans, more) in zip(texts, heads, strict=True)
    ]

    def finish(outputs: list[Any]) -> RerankOutcome:
        outcome = inner.finish(outputs)
        outcome.scored = [
            replace(doc, passage=Passage(0, ends[doc.index], doc.score)) for doc in outcome.scored
        ]
        return outcome

    return Plan(inner.sequences, finish)


def plan(backend: Backend, request: RerankRequest, max_chunks_per_request: int) -> Plan[RerankOutcome]:
    """The plan for a request: chunked, with head passages, or the backend's own."""
    if request.chunking is not None:
        return plan_chunked(backend, request, max_chunks_per_request)
    if request.return_passages:
        return plan_with_passages(backend, request)
    return backend.plan_rerank(request)
