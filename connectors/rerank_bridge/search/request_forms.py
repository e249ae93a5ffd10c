"""Reading a search request: the caller's body plus how to rerank it.

Besides explicit settings, three body forms are understood, so users can move
between the engines' native reranking and this bridge without rewriting
queries:
- Elasticsearch's `retriever.text_similarity_reranker` (retriever, field,
  inference_text, inference_id, rank_window_size, min_score, chunk_rescorer),
  with a standard, knn or rrf child retriever;
- OpenSearch's `ext.rerank.query_context` (query_text or query_text_path);
- this project's own `ext.rerank_bridge` ({"rerank": ..., "knn": ..., "hybrid": ...}).

Every form is a declared, strict model: a wrong type or an unknown key is a
RequestError naming the field's path.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from rerank_bridge.search.errors import RequestError
from rerank_bridge.search.settings import MAX_RANK_WINDOW, ChunkingSettings, Hybrid, KnnSearch, RerankSettings
from rerank_bridge.search.strict_json import PositiveInt, StrictForm, validated

# Elasticsearch's own default for text_similarity_reranker.
ES_RERANKER_WINDOW = 10
DEFAULT_SIZE = 10
Query = dict[str, Any]


class StandardRetriever(StrictForm):
    query: Query | None = None
    filter: Query | list[Query] | None = None


class KnnRetriever(StrictForm):
    field: str
    query_vector: list[float] | None = None
    # Asks the engine to embed the text; here the scoring server's Embed does.
    query_vector_builder: Query | None = None
    k: PositiveInt | None = None
    num_candidates: PositiveInt | None = None
    filter: Query | list[Query] | None = None


class FirstStageRetriever(StrictForm):
    standard: StandardRetriever | None = None
    knn: KnnRetriever | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FirstStageRetriever:
        chosen = [name for name, value in self if value is not None]
        if len(chosen) != 1:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"needs exactly one of {names}, got {', '.join(chosen) or 'none'}")
        return self


class RrfRetriever(StrictForm):
    retrievers: list[FirstStageRetriever]
    rank_constant: PositiveInt = 60
    rank_window_size: PositiveInt | None = None


class ChildRetriever(FirstStageRetriever):
    rrf: RrfRetriever | None = None


class EsChunkingSettings(StrictForm):
    """Elasticsearch's inference chunking_settings, as chunk_rescorer takes them.
    `max_chunk_size` and `overlap` are read as tokens of the served model
    (Elasticsearch counts words); `sentence_overlap` is accepted and has no
    counterpart (windows overlap by tokens)."""

    strategy: Literal["sentence", "word", "none"] = "sentence"
    max_chunk_size: PositiveInt | None = None
    overlap: Annotated[int, Field(ge=0)] | None = None
    sentence_overlap: Annotated[int, Field(ge=0, le=1)] | None = None


class ChunkRescorer(StrictForm):
    """Elasticsearch sends the `size` best chunks of each document (by a lexical
    pre-filter) to the reranker; here the model itself scores every chunk, up to
    the server's per-document limit, so `size` is accepted and not needed."""

    size: PositiveInt | None = None
    chunking_settings: EsChunkingSettings | None = None

    def chunking(self) -> ChunkingSettings | None:
        settings = self.chunking_settings or EsChunkingSettings()
        if settings.strategy == "none":
            return None
        return ChunkingSettings(size=settings.max_chunk_size, overlap=settings.overlap)


class TextSimilarityReranker(StrictForm):
    retriever: ChildRetriever
    field: str
    inference_text: str
    # Names the engine's inference endpoint; the bridge's model is the server's.
    inference_id: str | None = None
    rank_window_size: Annotated[int, Field(ge=1, le=MAX_RANK_WINDOW)] = ES_RERANKER_WINDOW
    min_score: float | None = None
    chunk_rescorer: ChunkRescorer | None = None


class RerankRetriever(StrictForm):
    text_similarity_reranker: TextSimilarityReranker


class QueryContext(StrictForm):
    query_text: str | None = None
    query_text_path: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> QueryContext:
        if (self.query_text is None) == (self.query_text_path is None):
            raise ValueError("needs exactly one of query_text, query_text_path")
        return self


class OpenSearchRerank(StrictForm):
    query_context: QueryContext


class OwnSection(StrictForm):
    """`ext.rerank_bridge`: each part is checked by its own settings class."""

    rerank: dict[str, Any] | None = None
    knn: dict[str, Any] | None = None
    hybrid: dict[str, Any] | None = None


@dataclass(frozen=True)
class SearchRequest:
    # The keyword first stage's body (query DSL, aggs, _source, highlight...),
    # without from/size and without the rerank sections.
    body: dict[str, Any]
    knn: KnnSearch | None
    hybrid: Hybrid | None
    settings: RerankSettings
    page_from: int
    page_size: int

    @property
    def window(self) -> int:
        return self.settings.rank_window_size


def has_rerank_form(body: dict[str, Any]) -> bool:
    """Whether the body asks for reranking in one of the forms above. A
    retriever that is not a text_similarity_reranker is the engine's own."""
    retriever, ext = body.get("retriever"), body.get("ext")
    if isinstance(retriever, dict) and "text_similarity_reranker" in retriever:
        return True
    return isinstance(ext, dict) and bool({"rerank", "rerank_bridge"} & set(ext))


def _knn_from_retriever(knn: KnnRetriever, text: str) -> KnnSearch:
    vector = tuple(knn.query_vector) if knn.query_vector is not None else None
    filter_ = {"bool": {"filter": knn.filter}} if isinstance(knn.filter, list) else knn.filter
    return KnnSearch(
        field=knn.field,
        query_vector=vector,
        query_text=None if vector is not None else text,
        k=knn.k,
        num_candidates=knn.num_candidates,
        filter=filter_,
    )


def _standard_query(standard: StandardRetriever) -> Query:
    query = standard.query or {"match_all": {}}
    if standard.filter is None:
        return query
    return {"bool": {"must": [query], "filter": standard.filter}}


def _es_reranker(
    body: dict[str, Any], settings: RerankSettings
) -> tuple[RerankSettings, KnnSearch | None, Hybrid | None]:
    where = "retriever.text_similarity_reranker"
    section = validated(RerankRetriever, body.pop("retriever"), "retriever").text_similarity_reranker
    settings = dataclasses.replace(
        settings,
        fields=(section.field,),
        query_text=section.inference_text,
        rank_window_size=section.rank_window_size,
        min_score=section.min_score if section.min_score is not None else settings.min_score,
        chunking=section.chunk_rescorer.chunking()
        if section.chunk_rescorer is not None
        else settings.chunking,
    )
    child, text = section.retriever, section.inference_text
    if child.standard is not None:
        body["query"] = _standard_query(child.standard)
        return settings, None, None
    if child.knn is not None:
        return settings, _knn_from_retriever(child.knn, text), None
    assert child.rrf is not None
    standards = [r.standard for r in child.rrf.retrievers if r.standard is not None]
    knns = [r.knn for r in child.rrf.retrievers if r.knn is not None]
    if len(standards) != 1 or len(knns) != 1:
        raise RequestError(f"{where}.retriever.rrf.retrievers", "needs one standard and one knn retriever")
    body["query"] = _standard_query(standards[0])
    hybrid = Hybrid(method="rrf", rank_constant=child.rrf.rank_constant)
    return settings, _knn_from_retriever(knns[0], text), hybrid


def _path_value(body: dict[str, Any], path: str) -> Any:
    """Follows a dotted path (OpenSearch's query_text_path, `$.` allowed) through the request body."""
    node: Any = body
    for part in path.removeprefix("$.").split("."):
        if not isinstance(node, dict) or part not in node:
            raise RequestError("ext.rerank.query_context.query_text_path", f"{path!r} is not in the request")
        node = node[part]
    return node


def _opensearch_reranker(body: dict[str, Any], section: Any, settings: RerankSettings) -> RerankSettings:
    context = validated(OpenSearchRerank, section, "ext.rerank").query_context
    text = context.query_text
    if context.query_text_path is not None:
        text = _path_value(body, context.query_text_path)
    if not isinstance(text, str):
        raise RequestError(
            "ext.rerank.query_context.query_text_path", f"must lead to a string, got {type(text).__name__}"
        )
    return dataclasses.replace(settings, query_text=text)


def _own_section(
    section: Any, settings: RerankSettings, knn: KnnSearch | None, hybrid: Hybrid | None
) -> tuple[RerankSettings, KnnSearch | None, Hybrid | None]:
    where = "ext.rerank_bridge"
    own = validated(OwnSection, section, where)
    if own.rerank is not None:
        merged = {**dataclasses.asdict(settings), **own.rerank}
        settings = RerankSettings.from_dict(merged, f"{where}.rerank")
    if own.knn is not None:
        knn = KnnSearch.from_dict(own.knn, f"{where}.knn")
    if own.hybrid is not None:
        hybrid = Hybrid.from_dict(own.hybrid, f"{where}.hybrid")
    return settings, knn, hybrid


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


# With reranking, pages come from the reranked window: a cursor into the
# first stage pages through another order and repeats hits.
CURSORS = ("search_after", "pit")


def parse_request(
    body: dict[str, Any] | None,
    settings: RerankSettings,
    knn: KnnSearch | None = None,
    hybrid: Hybrid | None = None,
) -> SearchRequest:
    body = copy.deepcopy(body) if body else {}
    for cursor in CURSORS:
        if cursor in body:
            raise RequestError(cursor, "cannot page a reranked search: use from/size inside the rank window")
    if "retriever" in body:
        settings, knn, hybrid = _es_reranker(body, settings)
    ext = body.get("ext")
    if isinstance(ext, dict):
        if "rerank" in ext:
            settings = _opensearch_reranker(body, ext.pop("rerank"), settings)
        if "rerank_bridge" in ext:
            settings, knn, hybrid = _own_section(ext.pop("rerank_bridge"), settings, knn, hybrid)
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
    if hybrid is not None and (knn is None or "query" not in body):
        raise RequestError("hybrid", "needs both a query and a knn search")
    if knn is not None and "query" in body and hybrid is None:
        hybrid = Hybrid()  # a query and a knn search together: fuse them (RRF)
    return SearchRequest(body, knn, hybrid, settings, page_from, page_size)
