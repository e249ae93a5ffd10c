"""Reranking from the vectors the engine stores, for a bi-encoder reranker.

An index whose vector field was filled by the scoring server's Embed records
which model made it in its mapping's `_meta`:

    {"_meta": {"rerank_bridge": {"vectors": {"vector": {"model": "multilingual-e5-small",
                                                        "dimensions": 384,
                                                        "input_type": "document"}}}}}

The connector asks the engine for that field along with the window's text (in
the first-stage call itself, through `fields`), sends each hit's vector with
the model the index names, and the server scores the vectors it can use and
encodes the rest: whether the model is the one it serves is for the server to
say. Each hit's `_rerank.vector` tells where its vector came from, and
`rerank.stored_vectors` counts them and says why any were encoded.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rerank_bridge.search.client import Reranking
from rerank_bridge.search.fusion import Hit
from rerank_bridge.search.settings import StoredVectorSettings

META_KEY = "rerank_bridge"
# What a JSON number parses to.
_NUMBERS = {float, int}


def vector_meta(field: str, model: str, dimensions: int) -> dict[str, Any]:
    """The mapping `_meta` that says who made `field`'s vectors (document prompt)."""
    record = {"model": model, "dimensions": dimensions, "input_type": "document"}
    return {META_KEY: {"vectors": {field: record}}}


def recorded_models(mappings: Any, field: str) -> dict[str, str | None]:
    """What a GET _mapping answer records as the model of `field`, by index."""
    found: dict[str, str | None] = {}
    for index, entry in mappings.items() if isinstance(mappings, dict) else ():
        meta = entry.get("mappings", {}).get("_meta", {}) if isinstance(entry, dict) else {}
        record = meta.get(META_KEY, {}).get("vectors", {}).get(field) if isinstance(meta, dict) else None
        model = record.get("model") if isinstance(record, dict) else None
        found[index] = model if isinstance(model, str) and model else None
    return found


class RecordedModels:
    """What indices' mappings record, kept a minute per connector: a mapping's _meta
    changes when an index is rebuilt, not between searches, and reading it costs a
    round trip per search."""

    TTL_SECONDS = 60.0

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], tuple[float, dict[str, str | None]]] = {}

    def get(self, indices: str, field: str) -> dict[str, str | None] | None:
        found = self._known.get((indices, field))
        if found is None or time.monotonic() - found[0] > self.TTL_SECONDS:
            return None
        return found[1]

    def put(self, indices: str, field: str, recorded: dict[str, str | None]) -> None:
        if len(self._known) > 1024:  # a bound, for callers that search ever new index sets
            self._known.clear()
        self._known[(indices, field)] = (time.monotonic(), recorded)


def hit_vector(hit: Hit, field: str) -> list[float] | None:
    """The hit's stored vector, from `fields` (both engines answer a vector field there
    as a flat list); None when it has none or it is not a list of finite numbers.
    Checked in bulk: fifty 384-number vectors, one by one, cost the window 4 ms."""
    values = hit.get("fields", {}).get(field)
    if not isinstance(values, list) or not values:
        return None
    # type(), not isinstance(): a bool is no number here. map() keeps the loops in C.
    if not set(map(type, values)) <= _NUMBERS or not all(map(math.isfinite, values)):
        return None
    return values


@dataclass
class StoredVectorUse:
    """What one window sends: vectors by document id, their model, and why some hits
    that were to be scored from a vector go without one."""

    field: str
    model: str
    embeddings: dict[str, list[float]]
    notes: list[str]

    def rerank_options(self) -> dict[str, Any]:
        return {"embeddings": self.embeddings, "embeddings_model": self.model}

    def summary(self, ranking: Reranking | None) -> dict[str, Any]:
        """`rerank.stored_vectors`: the field, the model, where the vectors came from."""
        summary: dict[str, Any] = {"field": self.field, "model": self.model}
        if ranking is not None:
            sources = Counter(document.source or "text" for document in ranking.documents)
            summary.update({source: sources.get(source, 0) for source in ("stored", "cached", "encoded")})
        fallbacks = [
            *self.notes,
            *([ranking.embeddings_fallback] if ranking and ranking.embeddings_fallback else []),
        ]
        if fallbacks:
            summary["fallback"] = "; ".join(fallbacks)
        return summary


def stored_vector_use(
    settings: StoredVectorSettings,
    documents: list[tuple[str, str]],
    hits: dict[str, Hit],
    recorded: dict[str, str | None],
) -> StoredVectorUse:
    """Which of the window's documents go with their stored vector. `recorded`: the
    model each index records for the field (unused when the settings name one)."""
    indices = {doc_id: str(hits[doc_id].get("_index", "")) for doc_id, _ in documents}
    notes: list[str] = []
    model = settings.model
    if model is None:
        named = Counter(m for index in set(indices.values()) if (m := recorded.get(index)) is not None)
        unrecorded = sorted(index for index in set(indices.values()) if recorded.get(index) is None)
        if unrecorded:
            notes.append(
                f"no model recorded for {settings.field!r} in the mapping of {', '.join(unrecorded)}"
            )
        model = named.most_common(1)[0][0] if named else ""
        others = sorted(set(named) - {model})
        if others:
            notes.append(f"indices record other models too ({', '.join(others)}): their hits are encoded")
    embeddings: dict[str, list[float]] = {}
    missing = 0
    for doc_id, _ in documents:
        if model and (settings.model is not None or recorded.get(indices[doc_id]) == model):
            vector = hit_vector(hits[doc_id], settings.field)
            if vector is None:
                missing += 1
            else:
                embeddings[doc_id] = vector
    if missing:
        notes.append(f"{missing} hits have no vector in {settings.field!r}")
    return StoredVectorUse(settings.field, model, embeddings, notes)
