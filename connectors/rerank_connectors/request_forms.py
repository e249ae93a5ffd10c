"""Reading a search request: the caller's body plus how to rerank it.

Besides explicit settings, three body forms are understood, so users can move
between the engines' native reranking and this bridge without rewriting
queries:
- Elasticsearch's `retriever.text_similarity_reranker` (retriever, field,
  inference_text, rank_window_size, min_score), with a standard, knn or rrf
  child retriever;
- OpenSearch's `ext.rerank.query_context` (query_text or query_text_path);
- this project's own `ext.rerank_bridge` ({"rerank": ..., "knn": ..., "hybrid": ...}).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from rerank_connectors.errors import RequestError
from rerank_connectors.settings import Hybrid, KnnSearch, RerankSettings

# Elasticsearch's own default for text_similarity_reranker.
ES_RERANKER_WINDOW = 10
DEFAULT_SIZE = 10


@dataclass(frozen=True)
class SearchRequest:
    # The keyword first stage's body (query DSL, aggs, _source, highlight...),
    # without from/size and without the rerank sections.
    body: dict[str, Any]
    keyword: bool
    knn: KnnSearch | None
    hybrid: Hybrid | None
    settings: RerankSettings
    page_from: int
    page_size: int

    @property
    def window(self) -> int:
        return self.settings.rank_window_size


def _require(section: dict[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise RequestError(f"{where}.{key}", "is required")
    return section[key]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(where, f"must be an object, got {type(value).__name__}")
    return value


def _knn_from_retriever(knn: dict[str, Any], where: str, text: str) -> KnnSearch:
    vector = knn.get("query_vector")
    return KnnSearch(
        field=_require(knn, "field", where),
        query_vector=tuple(vector) if vector is not None else None,
        # A query_vector_builder means "embed the text": the server's Embed does that.
        query_text=None if vector is not None else text,
        k=knn.get("k"),
        num_candidates=knn.get("num_candidates"),
        filter=knn.get("filter"),
    )


def _es_reranker(
    body: dict[str, Any], settings: RerankSettings
) -> tuple[RerankSettings, KnnSearch | None, Hybrid | None]:
    retriever = _object(body.pop("retriever"), "retriever")
    if list(retriever) != ["text_similarity_reranker"]:
        raise RequestError(
            "retriever", "the bridge runs a text_similarity_reranker retriever; got " + ", ".join(retriever)
        )
    where = "retriever.text_similarity_reranker"
    section = _object(retriever["text_similarity_reranker"], where)
    text = _require(section, "inference_text", where)
    settings = dataclasses.replace(
        settings,
        fields=(_require(section, "field", where),),
        query_text=text,
        rank_window_size=section.get("rank_window_size", ES_RERANKER_WINDOW),
        min_score=section.get("min_score", settings.min_score),
    )
    child = _object(_require(section, "retriever", where), f"{where}.retriever")
    kind = next(iter(child), "")
    inner = f"{where}.retriever.{kind}"
    if kind == "standard":
        standard = _object(child[kind], inner)
        if "query" in standard:
            body["query"] = standard["query"]
        if "filter" in standard:
            body["query"] = {
                "bool": {"must": [body.get("query", {"match_all": {}})], "filter": standard["filter"]}
            }
        return settings, None, None
    if kind == "knn":
        return settings, _knn_from_retriever(_object(child[kind], inner), inner, text), None
    if kind == "rrf":
        rrf = _object(child[kind], inner)
        knn = None
        for i, item in enumerate(_require(rrf, "retrievers", inner)):
            if "standard" in item:
                body["query"] = item["standard"].get("query", {"match_all": {}})
            elif "knn" in item:
                knn = _knn_from_retriever(item["knn"], f"{inner}.retrievers[{i}].knn", text)
            else:
                raise RequestError(f"{inner}.retrievers[{i}]", "must be a standard or a knn retriever")
        if knn is None or "query" not in body:
            raise RequestError(f"{inner}.retrievers", "needs one standard and one knn retriever")
        return settings, knn, Hybrid(method="rrf", rank_constant=rrf.get("rank_constant", 60))
    raise RequestError(f"{where}.retriever", f"must be standard, knn or rrf, got {kind or 'nothing'}")


def _path_value(body: dict[str, Any], path: str) -> Any:
    """Follows a dotted path (OpenSearch's query_text_path, `$.` allowed) through the request body."""
    node: Any = body
    for part in path.removeprefix("$.").split("."):
        if not isinstance(node, dict) or part not in node:
            raise RequestError("ext.rerank.query_context.query_text_path", f"{path!r} is not in the request")
        node = node[part]
    return node


def _opensearch_reranker(
    body: dict[str, Any], section: dict[str, Any], settings: RerankSettings
) -> RerankSettings:
    where = "ext.rerank.query_context"
    context = _object(_require(_object(section, "ext.rerank"), "query_context", "ext.rerank"), where)
    if "query_text" in context:
        text = context["query_text"]
    elif "query_text_path" in context:
        text = _path_value(body, context["query_text_path"])
    else:
        raise RequestError(where, "needs query_text or query_text_path")
    if not isinstance(text, str):
        raise RequestError(where, f"the query text must be a string, got {type(text).__name__}")
    return dataclasses.replace(settings, query_text=text)


# Queries whose text the reranker can take when none is given explicitly.
TEXT_QUERIES = (
    "match",
    "match_phrase",
    "match_bool_prefix",
    "multi_match",
    "query_string",
    "simple_query_string",
)


def infer_query_text(query: Any) -> str | None:
    """The text of the first full-text clause in a query (a bool's clauses
    included): `{"match": {"title": "x"}}` or `{"multi_match": {"query": "x"}}` give "x"."""
    if isinstance(query, list):
        return next((text for item in query if (text := infer_query_text(item))), None)
    if not isinstance(query, dict):
        return None
    for kind, clause in query.items():
        if kind in TEXT_QUERIES and isinstance(clause, dict):
            if isinstance(clause.get("query"), str):
                return str(clause["query"])
            for value in clause.values():
                if isinstance(value, str):
                    return value
                if isinstance(value, dict) and isinstance(value.get("query"), str):
                    return str(value["query"])
        elif isinstance(clause, dict | list) and (text := infer_query_text(clause)):
            return text
    return None


def _page_number(body: dict[str, Any], key: str, default: int) -> int:
    value = body.pop(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RequestError(key, f"must be a non-negative integer, got {value!r}")
    return value


def parse_request(
    body: dict[str, Any] | None,
    settings: RerankSettings,
    knn: KnnSearch | None = None,
    hybrid: Hybrid | None = None,
) -> SearchRequest:
    body = copy.deepcopy(body) if body else {}
    if "retriever" in body:
        settings, knn, hybrid = _es_reranker(body, settings)
    ext = body.get("ext")
    if isinstance(ext, dict):
        if "rerank" in ext:
            settings = _opensearch_reranker(body, ext.pop("rerank"), settings)
        if "rerank_bridge" in ext:
            own = _object(ext.pop("rerank_bridge"), "ext.rerank_bridge")
            if "rerank" in own:
                merged = {
                    **dataclasses.asdict(settings),
                    **_object(own["rerank"], "ext.rerank_bridge.rerank"),
                }
                settings = RerankSettings.from_dict(merged, "ext.rerank_bridge.rerank")
            if "knn" in own:
                knn = KnnSearch.from_dict(own["knn"], "ext.rerank_bridge.knn")
            if "hybrid" in own:
                hybrid = Hybrid.from_dict(own["hybrid"], "ext.rerank_bridge.hybrid")
        if not ext:
            del body["ext"]
    page_from = _page_number(body, "from", 0)
    page_size = _page_number(body, "size", DEFAULT_SIZE)
    if not settings.fields:
        raise RequestError("rerank.fields", "name at least one text field for the reranker to read")
    if not settings.query_text and (inferred := infer_query_text(body.get("query"))):
        settings = dataclasses.replace(settings, query_text=inferred)
    if not settings.query_text or not settings.query_text.strip():
        raise RequestError(
            "rerank.query_text", "the reranker needs the query text (none in the query to take)"
        )
    if page_size > settings.rank_window_size:
        raise RequestError("size", f"{page_size} is larger than rank_window_size {settings.rank_window_size}")
    keyword = "query" in body or knn is None
    if hybrid is not None and (knn is None or "query" not in body):
        raise RequestError("hybrid", "needs both a query and a knn search")
    if knn is not None and "query" in body and hybrid is None:
        hybrid = Hybrid()  # a query and a knn search together: fuse them (RRF)
    return SearchRequest(body, keyword, knn, hybrid, settings, page_from, page_size)
