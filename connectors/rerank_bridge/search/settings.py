"""How a search is reranked, and the first-stage shapes besides a plain query.

Each class is a strict pydantic dataclass (strict_json): built from Python or
from a request body, a value of the wrong type (`"50"` for a window, `10.5` for
a count, `"yes"` for a flag) or an unknown key is refused with a RequestError
that names the field's full path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass

from rerank_bridge.search.blending import BlendSettings
from rerank_bridge.search.strict_json import STRICT, Names, PositiveInt, Vector, validated

DEFAULT_RANK_WINDOW = 50
# Elasticsearch's index.max_result_window: no first stage returns more.
MAX_RANK_WINDOW = 10_000


class ChunkingSettings(BaseModel):
    """Long documents scored by the scoring server as token windows: `size` tokens
    (default: the server's), neighbours sharing `overlap`, at most `max_chunks`
    per document; a document scores the `max` or `mean` of its chunks. (A frozen
    model rather than a dataclass: strict mode lets a nested model come as a JSON
    object, and RerankSettings stays hashable.)"""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    size: PositiveInt | None = None
    overlap: Annotated[int, Field(ge=0)] | None = None
    aggregation: Literal["max", "mean"] = "max"
    max_chunks: PositiveInt | None = None


class StoredVectorSettings(BaseModel):
    """Rerank from the vectors the index stores in `field` instead of encoding the hits'
    text: for a bi-encoder, when `model` (default: the model the index's mapping
    records for the field, stored_vectors.py) is the one the scoring server serves."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    field: Annotated[str, Field(min_length=1)]
    model: Annotated[str, Field(min_length=1)] | None = None


@dataclass(frozen=True, config=STRICT)
class RerankSettings:
    """`fields`: dotted paths (into _source) whose text is joined, in order, to
    make the passage the reranker reads; array values are joined too."""

    fields: Names = ()
    query_text: str | None = None
    rank_window_size: Annotated[int, Field(ge=1, le=MAX_RANK_WINDOW)] = DEFAULT_RANK_WINDOW
    top_n: PositiveInt | None = None
    min_score: float | None = None
    # Fail-open: a reranker outage returns the first-stage order, flagged.
    fail_open: bool = True
    instruction: str = ""
    max_document_tokens: PositiveInt | None = None
    # Seconds; the scoring server's deadline for this search.
    timeout: Annotated[float, Field(gt=0, le=600)] | None = None
    chunking: ChunkingSettings | None = None
    # Each hit's best passage (the span of its reranked text its score came from):
    # in `_rerank.best_passage` as offsets, with its text, or also as a highlight.
    best_passage: Literal["none", "offsets", "text", "highlight"] = "none"
    # The final score blends the reranker's with the first stage's (blending.py);
    # None: the reranker's score alone decides, as in every engine's own reranking.
    blend: BlendSettings | None = None
    stored_vectors: StoredVectorSettings | None = None

    @classmethod
    def from_dict(cls, section: Any, where: str = "rerank") -> RerankSettings:
        return validated(cls, section, where)


@dataclass(frozen=True, config=STRICT)
class KnnSearch:
    """A vector first stage: the query vector is given, or embedded from
    `query_text` (default: the rerank query text) by the server's Embed."""

    field: str
    query_vector: Vector | None = None
    query_text: str | None = None
    k: PositiveInt | None = None  # default: the rank window
    num_candidates: PositiveInt | None = None
    filter: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, section: Any, where: str = "knn") -> KnnSearch:
        return validated(cls, section, where)


@dataclass(frozen=True, config=STRICT)
class Hybrid:
    """Keyword + vector fusion done by the connector (works on any licence and
    without plugins): reciprocal rank fusion, or a weighted sum of min-max
    normalised scores. `native` asks the engine to fuse instead."""

    method: Literal["rrf", "linear"] = "rrf"
    rank_constant: PositiveInt = 60
    keyword_weight: Annotated[float, Field(ge=0, le=1)] = 0.5
    native: bool = False
    # OpenSearch native fusion: the search pipeline holding the normalization processor.
    pipeline: str = ""

    @classmethod
    def from_dict(cls, section: Any, where: str = "hybrid") -> Hybrid:
        return validated(cls, section, where)
