"""`POST /v1/rerank` (the Jina API shape) and `POST /v2/rerank` (Cohere v2), so
the engines' own reranking hooks (Elasticsearch's inference endpoints,
OpenSearch's ml-commons connectors) and the Cohere SDK can call the model.

Cohere's result objects carry exactly `index` and `relevance_score` (plus
`document` only when asked): Elasticsearch's Cohere parser rejects unknown
keys. Errors carry Elasticsearch's shape and, for Cohere and Jina clients, a
top-level `message`.

Two fields of this bridge's own (a Cohere SDK user sends them through
`request_options={"additional_body_parameters": ...}`): `blend`, the settings
of blending.py, and `first_stage_scores`, one per document in the documents'
order, which is taken as the first stage's. Without scores the blend reads
that order's ranks. `relevance_score` is then the blended score.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid
from typing import Annotated, Any

import grpc
from aiohttp import web
from pydantic import BeforeValidator, Field, field_validator, model_validator

from rerank_bridge.bridge.bodies import json_object
from rerank_bridge.bridge.exchange import Exchange
from rerank_bridge.bridge.formats import answer
from rerank_bridge.bridge.search_params import unrecognized_parameter
from rerank_bridge.search.blending import BlendSettings, blend
from rerank_bridge.search.client import RankedDocument, Reranking
from rerank_bridge.search.errors import RerankBridgeError, reranker_error
from rerank_bridge.search.strict_json import PositiveInt, StrictForm, validated


class DocumentObject(StrictForm):
    text: str


def _document(value: Any) -> Any:
    """A document is a string or an object with a text field (Jina's shape)."""
    if isinstance(value, str):
        return {"text": value}
    if not isinstance(value, dict):
        raise ValueError("must be a string or an object with a text field")
    return value


Document = Annotated[DocumentObject, BeforeValidator(_document)]


class RerankCall(StrictForm):
    model: str = ""
    query: str
    documents: Annotated[list[Document], Field(min_length=1)]
    top_n: PositiveInt | None = None
    max_tokens_per_doc: PositiveInt | None = None
    return_documents: bool | None = None
    # Cohere's scheduling hint; this server has one queue, so it is accepted and unused.
    priority: int | None = None
    blend: BlendSettings | None = None
    first_stage_scores: list[float] | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("must not be empty")
        return query

    @model_validator(mode="after")
    def _one_score_per_document(self) -> RerankCall:
        scores = self.first_stage_scores
        if scores is not None and len(scores) != len(self.documents):
            raise ValueError(f"first_stage_scores: {len(scores)} scores for {len(self.documents)} documents")
        return self

    def texts(self) -> list[str]:
        return [document.text for document in self.documents]


def blended(call: RerankCall, ranking: Reranking, top_n: int | None) -> Reranking:
    """The server's scores blended with the first stage's, best first, cut to top_n."""
    if call.blend is None:
        return ranking
    by_index = {document.index: document for document in ranking.documents}
    count = len(call.documents)
    first: list[float | None] = list(call.first_stage_scores) if call.first_stage_scores else [None] * count
    order = blend(first, [by_index[i].score for i in range(count)], call.blend)
    documents: list[RankedDocument] = [
        dataclasses.replace(by_index[i], score=score) for i, score in order[:top_n]
    ]
    return dataclasses.replace(ranking, documents=documents)


# The server's field names for what this API calls otherwise.
SERVER_FIELDS = {"max_document_tokens": "max_tokens_per_doc"}


def shortest_float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32, the precision the
    model scores in. Written in full, a float32 widened to a double takes ~19
    characters (0.12345678806304932), and ml-commons' JSON reader (json-smart)
    turns any number over 18 characters into a BigDecimal, which its Cohere rerank
    post-processing cannot cast to Double: every OpenSearch rerank would fail."""
    single: float = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        candidate = float(f"{single:.{digits}g}")
        if struct.unpack("f", struct.pack("f", candidate))[0] == single:
            return candidate
    return single


def _results(call: RerankCall, ranking: Reranking, with_documents: bool) -> list[dict[str, Any]]:
    texts = call.texts()
    results = []
    for document in ranking.documents:
        score = shortest_float32(document.score)
        result: dict[str, Any] = {"index": document.index, "relevance_score": score}
        if with_documents:
            result["document"] = {"text": texts[document.index]}
        results.append(result)
    return results


def jina_response(call: RerankCall, ranking: Reranking) -> dict[str, Any]:
    with_documents = call.return_documents is not False
    return {
        "model": ranking.model,
        "usage": {"total_tokens": ranking.usage.total_tokens},
        "results": _results(call, ranking, with_documents),
    }


def cohere_response(call: RerankCall, ranking: Reranking) -> dict[str, Any]:
    meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    results = _results(call, ranking, bool(call.return_documents))
    return {"id": str(uuid.uuid4()), "results": results, "meta": meta}


async def _rerank(ex: Exchange, shape: str) -> web.StreamResponse:
    for name in ex.target.params:
        raise unrecognized_parameter(name, ex.target.path)
    raw, _ = await ex.read_body()
    body = json_object(raw, "body", ex.config.limits.max_json_depth)
    call = validated(RerankCall, body if body is not None else {}, "")
    top_n = min(call.top_n, len(call.documents)) if call.top_n is not None else None
    try:
        ranking = await ex.state.reranker.rerank(
            call.query,
            [(str(i), text) for i, text in enumerate(call.texts())],
            # A blend needs every document's score: the cut comes after it.
            top_n=top_n if call.blend is None else None,
            max_document_tokens=call.max_tokens_per_doc,
            model=call.model,
            request_id=ex.request_id,
        )
    except grpc.RpcError as error:
        raise reranker_error(error.code().name, error.details() or "", SERVER_FIELDS) from error
    ranking = blended(call, ranking, top_n)
    return answer(jina_response(call, ranking) if shape == "jina" else cohere_response(call, ranking))


def handler(shape: str) -> Any:
    async def rerank(ex: Exchange) -> web.StreamResponse:
        try:
            return await _rerank(ex, shape)
        except RerankBridgeError as error:
            return answer({**error.error_body(), "message": str(error)}, status=error.status)

    return rerank
