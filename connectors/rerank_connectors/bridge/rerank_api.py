"""`POST /v1/rerank` (the Jina API shape) and `POST /v2/rerank` (Cohere v2), so
the engines' own reranking hooks (Elasticsearch's inference endpoints,
OpenSearch's ml-commons connectors) can call the model.

Cohere's result objects carry exactly `index` and `relevance_score` (plus
`document` only when asked): Elasticsearch's Cohere parser rejects unknown keys.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from rerank_connectors.client import Reranking
from rerank_connectors.errors import RequestError


@dataclass(frozen=True)
class RerankCall:
    model: str
    query: str
    documents: list[str]
    top_n: int | None
    return_documents: bool


def _text(document: Any, where: str) -> str:
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and isinstance(document.get("text"), str):
        return str(document["text"])
    raise RequestError(where, "must be a string or an object with a text field")


def parse_call(body: Any, return_documents_default: bool) -> RerankCall:
    if not isinstance(body, dict):
        raise RequestError("body", "must be a JSON object")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError("query", "must be a non-empty string")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise RequestError("documents", "must be a non-empty list")
    texts = [_text(document, f"documents[{i}]") for i, document in enumerate(documents)]
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise RequestError("top_n", f"must be a positive integer, got {top_n!r}")
    model = body.get("model") or ""
    if not isinstance(model, str):
        raise RequestError("model", "must be a string")
    return RerankCall(
        model=model,
        query=query,
        documents=texts,
        top_n=min(top_n, len(texts)) if top_n is not None else None,
        return_documents=bool(body.get("return_documents", return_documents_default)),
    )


def _results(call: RerankCall, ranking: Reranking) -> list[dict[str, Any]]:
    results = []
    for document in ranking.documents:
        result: dict[str, Any] = {"index": document.index, "relevance_score": document.score}
        if call.return_documents:
            result["document"] = {"text": call.documents[document.index]}
        results.append(result)
    return results


def jina_response(call: RerankCall, ranking: Reranking) -> dict[str, Any]:
    return {
        "model": ranking.model,
        "usage": {"total_tokens": ranking.usage.total_tokens},
        "results": _results(call, ranking),
    }


def cohere_response(call: RerankCall, ranking: Reranking) -> dict[str, Any]:
    meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    return {"id": str(uuid.uuid4()), "results": _results(call, ranking), "meta": meta}
