"""Blending the reranker's scores with the first stage's:

    final = weight * norm(reranker) + (1 - weight) * norm(first stage)

Replacing the first-stage order by the reranker's loses relevance wherever the
model does not know the language or the domain; a blend, its weight tuned on
the user's own judgments (`rerank-bridge eval --tune`), falls back towards the
first stage there instead. The blend lives in the connector, not the scoring
server: only the connector has the first-stage scores, and the server's scores
stay a pure function of (query, document), so caches and evaluation reuse them.

Normalisers, each over one window:
- `minmax`: (v - min) / (max - min); all equal gives 1.0 (as good as the best);
- `zscore`: (v - mean) / standard deviation; all equal gives 0.0;
- `rank`: 1 / rank (ranks from 1);
- `rrf`: 1 / (rank_constant + rank), reciprocal rank fusion; weight 0.5 is plain
  RRF up to a factor of 2.

A first stage whose scores do not say its order (a sort by a field, a score
missing) is normalised from its ranks: -rank stands for its score.

Ties keep the order of the input with the larger weight (the reranker's at
0.5), then the first stage's, so weight 1 gives exactly the reranker's order
and weight 0 exactly the first stage's.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Normalizer = Literal["minmax", "zscore", "rank", "rrf"]
NORMALIZERS: tuple[Normalizer, ...] = ("minmax", "zscore", "rank", "rrf")


class BlendSettings(BaseModel):
    """How a window's final scores are made (a frozen model, so that RerankSettings,
    which holds it, stays hashable and a JSON object is accepted for it)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    weight: Annotated[float, Field(ge=0, le=1)] = 0.5
    normalizer: Normalizer = "minmax"
    rank_constant: Annotated[int, Field(ge=1)] = 60

    def describe(self) -> dict[str, float | int | str]:
        """The settings as the response's summary and the eval report show them."""
        shown: dict[str, float | int | str] = {"weight": self.weight, "normalizer": self.normalizer}
        if self.normalizer == "rrf":
            shown["rank_constant"] = self.rank_constant
        return shown


def _ranks(values: Sequence[float]) -> list[int]:
    """Each value's rank from 1, highest first; ties ranked by position."""
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    ranks = [0] * len(values)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def normalise(values: Sequence[float], normalizer: str, rank_constant: int = 60) -> list[float]:
    if not values:
        return []
    if normalizer == "minmax":
        low, high = min(values), max(values)
        span = high - low
        return [(v - low) / span if span else 1.0 for v in values]
    if normalizer == "zscore":
        mean, deviation = statistics.fmean(values), statistics.pstdev(values)
        return [(v - mean) / deviation if deviation else 0.0 for v in values]
    if normalizer == "rank":
        return [1.0 / rank for rank in _ranks(values)]
    if normalizer == "rrf":
        return [1.0 / (rank_constant + rank) for rank in _ranks(values)]
    raise ValueError(f"unknown normalizer {normalizer!r}; known: {', '.join(NORMALIZERS)}")


def first_stage_values(scores: Sequence[float | None]) -> list[float]:
    """The first stage's scores in window order, or -rank where they do not say
    that order (a score missing or not finite, or one above the score before it)."""
    values = [s for s in scores if s is not None and math.isfinite(s)]
    if len(values) == len(scores) and all(a >= b for a, b in itertools.pairwise(values)):
        return values
    return [-float(rank) for rank in range(1, len(scores) + 1)]


def blend(
    first_stage: Sequence[float | None], reranker: Sequence[float], settings: BlendSettings
) -> list[tuple[int, float]]:
    """The window in its blended order, as (position in the first stage, final
    score). `first_stage` and `reranker` are aligned, in first-stage order."""
    if len(first_stage) != len(reranker):
        raise ValueError(f"{len(first_stage)} first-stage scores for {len(reranker)} reranker scores")
    weight = settings.weight
    first = normalise(first_stage_values(first_stage), settings.normalizer, settings.rank_constant)
    second = normalise(reranker, settings.normalizer, settings.rank_constant)
    final = [weight * r + (1 - weight) * f for r, f in zip(second, first, strict=True)]
    reranker_rank = _ranks(reranker)

    def key(i: int) -> tuple[float, int, int]:
        # At weight 1 (0), rounding can tie scores the reranker (first stage) told
        # apart: the heavier input breaks ties, so the extremes are exact.
        return (-final[i], reranker_rank[i] if weight >= 0.5 else i, i)

    return [(i, final[i]) for i in sorted(range(len(final)), key=key)]
