"""How a search is reranked, and the first-stage shapes besides a plain query."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from rerank_connectors.errors import RequestError

DEFAULT_RANK_WINDOW = 50
SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class RerankSettings:
    """`fields`: dotted paths (into _source) whose text is joined, in order, to
    make the passage the reranker reads; array values are joined too."""

    fields: tuple[str, ...] = ()
    query_text: str | None = None
    rank_window_size: int = DEFAULT_RANK_WINDOW
    top_n: int | None = None
    min_score: float | None = None
    # Fail-open: a reranker failure returns the first-stage order, flagged.
    fail_open: bool = True
    instruction: str = ""
    max_document_tokens: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.fields, str):
            object.__setattr__(self, "fields", (self.fields,))
        if self.rank_window_size < 1:
            raise RequestError("rank_window_size", f"must be at least 1, got {self.rank_window_size}")
        if self.top_n is not None and self.top_n < 1:
            raise RequestError("top_n", f"must be at least 1, got {self.top_n}")

    @classmethod
    def from_dict(cls, section: dict[str, Any], where: str = "rerank") -> RerankSettings:
        return _from_dict(cls, section, where)


@dataclass(frozen=True)
class KnnSearch:
    """A vector first stage: the query vector is given, or embedded from
    `query_text` (default: the rerank query text) by the server's Embed."""

    field: str
    query_vector: tuple[float, ...] | None = None
    query_text: str | None = None
    k: int | None = None  # default: the rank window
    num_candidates: int | None = None
    filter: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, section: dict[str, Any], where: str = "knn") -> KnnSearch:
        if "query_vector" in section:
            section = {**section, "query_vector": tuple(section["query_vector"])}
        return _from_dict(cls, section, where)


@dataclass(frozen=True)
class Hybrid:
    """Keyword + vector fusion done by the connector (works on any licence and
    without plugins): reciprocal rank fusion, or a weighted sum of min-max
    normalised scores. `native` asks the engine to fuse instead."""

    method: Literal["rrf", "linear"] = "rrf"
    rank_constant: int = 60
    keyword_weight: float = 0.5
    native: bool = False
    # OpenSearch native fusion: the search pipeline holding the normalization processor.
    pipeline: str = ""

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "linear"):
            raise RequestError("hybrid.method", f"must be rrf or linear, got {self.method!r}")
        if not 0 <= self.keyword_weight <= 1:
            raise RequestError("hybrid.keyword_weight", f"must be in [0, 1], got {self.keyword_weight}")

    @classmethod
    def from_dict(cls, section: dict[str, Any], where: str = "hybrid") -> Hybrid:
        return _from_dict(cls, section, where)


def _from_dict(cls: type[SettingsT], section: dict[str, Any], where: str) -> SettingsT:
    if not isinstance(section, dict):
        raise RequestError(where, f"must be an object, got {type(section).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(section) - known)
    if unknown:
        raise RequestError(f"{where}.{unknown[0]}", f"unknown setting; known: {', '.join(sorted(known))}")
    values = dict(section)
    if "fields" in values:
        fields = values["fields"]
        values["fields"] = (fields,) if isinstance(fields, str) else tuple(fields)
    try:
        return cls(**values)
    except RequestError as error:
        raise RequestError(f"{where}.{error.field}", str(error).split(": ", 1)[1]) from None
    except TypeError as error:
        raise RequestError(where, str(error)) from None
