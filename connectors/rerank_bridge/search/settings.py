"""How a search is reranked, and the first-stage shapes besides a plain query.

Each class is a strict pydantic dataclass: built from Python or from a request
body, a value of the wrong type (`"50"` for a window, `10.5` for a count,
`"yes"` for a flag) or an unknown key is refused, and `validated` turns the
refusal into a RequestError that names the field's full path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from rerank_bridge.search.blending import BlendSettings
from rerank_bridge.search.errors import RequestError

DEFAULT_RANK_WINDOW = 50
# Elasticsearch's index.max_result_window: no first stage returns more.
MAX_RANK_WINDOW = 10_000
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
ModelT = TypeVar("ModelT")


def _as_tuple(value: Any) -> Any:
    """JSON arrays arrive as lists; a single field name may come as a string."""
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


class StrictForm(BaseModel):
    """A JSON object read strictly, as the settings below are: the base of every request form."""

    model_config = STRICT


Names = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
Vector = Annotated[tuple[float, ...], BeforeValidator(_as_tuple)]
PositiveInt = Annotated[int, Field(ge=1)]


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


def field_path(where: str, location: tuple[int | str, ...]) -> str:
    """`ext.rerank` + ("documents", 3, "text") -> `ext.rerank.documents[3].text`."""
    path = where
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


# pydantic names the member of a union it tried (`str`, `list[str]`, a class);
# field names here are lowercase identifiers, so those parts are told apart.
_UNION_MEMBER = re.compile(r"[A-Z].*|.*[\[\]()-].*|str|int|float|bool|none|__root__")


def _field_location(location: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], str | None]:
    """The location without union-member parts, and the member it named (if any)."""
    kept, member = [], None
    for part in location:
        if isinstance(part, str) and _UNION_MEMBER.fullmatch(part):
            member = member or ("object" if part[0].isupper() else part)
        else:
            kept.append(part)
    return tuple(kept), member


def request_error(error: ValidationError, where: str) -> RequestError:
    """The first problem pydantic found, as a RequestError naming its field."""
    problems = error.errors()
    first = problems[0]
    location, member = _field_location(tuple(first["loc"]))
    # pydantic's wording, less its own vocabulary (class names, "Value error, ").
    message = re.sub(r" or instance of \w+|^Value error, ", "", first["msg"])
    if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        message = "unknown setting"
    elif member is not None and first["type"].endswith("_type"):
        members = [m for e in problems if (m := _field_location(tuple(e["loc"])))[0] == location]
        expected = " or ".join(dict.fromkeys(str(m[1]) for m in members if m[1]))
        message = f"must be {expected}, got {first['input']!r}"
    elif first["type"] not in ("missing", "value_error"):
        message += f", got {first['input']!r}"
    return RequestError(field_path(where, location), message[:300])


def validated(model: type[ModelT], section: Any, where: str) -> ModelT:
    """`model` built from a JSON object (its keys as keyword arguments)."""
    if not isinstance(section, dict):
        raise RequestError(where, f"must be an object, got {type(section).__name__}")
    try:
        return model(**section)
    except ValidationError as error:
        raise request_error(error, where) from None
    except TypeError as error:  # a key that is not a valid Python identifier
        raise RequestError(where, str(error)) from None
