"""Hard negatives from the user's own engine: the first stage's window for each
training query, at the depth that will be reranked, less every document judged
relevant to that query. These near-misses are what a reranker has to learn to put
below the relevant ones; random corpus documents teach it almost nothing.

The window is the first stage's own (the same call `eval` makes, through the
connector), and the negatives kept per query are a seeded sample of it, so the same
engine, index and seed always mine the same examples.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rerank_bridge.evaluation.beir import Collection
from rerank_bridge.evaluation.runner import run_first_stage
from rerank_bridge.search.connector import RerankingSearch
from rerank_bridge.training.judgments import JudgmentError, Judgments

# How many missing judged documents a refusal names.
NAMED = 3


@dataclass(frozen=True)
class Example:
    """One training query of a collection: its relevant passages, its mined negatives
    (the window's order kept) and the window itself, first-stage order, as document ids."""

    collection: str
    query_id: str
    query: str
    positives: tuple[tuple[str, str], ...]  # (document id, passage)
    negatives: tuple[tuple[str, str], ...]
    window: tuple[str, ...]


def check_indexed(engine: Any, index: str, *judged: Judgments) -> None:
    """Every document judged relevant is in the index, or one line says which are not
    (a judgment list made against another index, or a corpus indexed in part)."""
    wanted = sorted(
        {doc for judgments in judged for query in judgments.queries for doc in judgments.relevant(query)}
    )
    missing: list[str] = []
    for start in range(0, len(wanted), 500):
        ids = wanted[start : start + 500]
        docs = [{"_id": doc, "_source": False} for doc in ids]
        found = engine.mget(index=index, body={"docs": docs})["docs"]
        missing.extend(doc["_id"] for doc in found if not doc.get("found"))
    if missing:
        raise JudgmentError(
            f"index {index} does not hold {len(missing)} of the {len(wanted)} documents judged relevant, "
            f"e.g. {', '.join(missing[:NAMED])}: judge documents of this index, or index them first"
        )


def mine(
    search: RerankingSearch,
    index: str,
    collection: Collection,
    judgments: Judgments,
    stage: str,
    depth: int,
    per_query: int,
    seed: int,
    progress: Callable[[int], None] = lambda done: None,
) -> list[Example]:
    """An Example per training query whose window holds at least one negative."""
    rng = random.Random(seed)
    examples = []
    for done, query_id in enumerate(sorted(judgments.queries), start=1):
        query = judgments.queries[query_id]
        window, texts, _ = run_first_stage(search, index, stage, query, None, depth)
        relevant = judgments.relevant(query_id)
        candidates = [(doc, texts[doc]) for doc, _ in window if doc not in relevant and texts.get(doc)]
        kept = sorted(rng.sample(range(len(candidates)), min(per_query, len(candidates))))
        positives = tuple(
            (doc, collection.passage(doc)) for doc in sorted(relevant) if doc in collection.corpus
        )
        if kept and positives:
            examples.append(
                Example(
                    collection=collection.name,
                    query_id=query_id,
                    query=query,
                    positives=positives,
                    negatives=tuple(candidates[i] for i in kept),
                    window=tuple(doc for doc, _ in window),
                )
            )
        progress(done)
    return examples
