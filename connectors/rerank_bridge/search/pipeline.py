"""One reranked search, minus the I/O: which first-stage calls to make, which
texts to send to the reranker, and how to put the engine's response back
together. The sync and async connectors share it and differ only in awaiting.

The response keeps the engine's shape. Per hit, `_score` becomes the final
score (the reranker's, or its blend with the first stage's) and `_rerank`
keeps both inputs: {"first_stage_score", "first_stage_rank" (from 1),
"reranked", "reranker_score" (when reranked)}, and, when asked,
"best_passage": {start, end, score, text?}, offsets into the text the reranker
read (the hit's fields joined one per line), and "vector": where a bi-encoder's
vector of the hit came from when stored vectors were asked for (stored_vectors.py).
At the top, `rerank` says whether the window was reranked, by which model, how
it was blended, and why not if it was not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rerank_bridge.search.blending import blend
from rerank_bridge.search.client import Passage, Reranking
from rerank_bridge.search.dialects import Dialect, FirstStageCall
from rerank_bridge.search.fusion import Hit, linear_fusion, reciprocal_rank_fusion
from rerank_bridge.search.request_forms import SearchRequest
from rerank_bridge.search.stored_vectors import StoredVectorUse

HIT_KEY = "_rerank"
SUMMARY_KEY = "rerank"
# The highlight entry a RAG pipeline reads the best passage from (best_passage="highlight").
PASSAGE_HIGHLIGHT = "_rerank.best_passage"


@dataclass
class Candidate:
    hit: Hit
    first_stage_score: float | None
    first_stage_rank: int
    text: str


@dataclass
class Ranked:
    """A candidate in its final place: its final score, the reranker's own (when
    it read the candidate), and the passage of `candidate.text` that came from."""

    candidate: Candidate
    score: float | None
    reranker_score: float | None = None
    passage: Passage | None = None
    # Where a bi-encoder's vector of the candidate came from ("stored", "cached", "encoded").
    source: str = ""

    @property
    def reranked(self) -> bool:
        return self.reranker_score is not None


def _source_values(node: Any, parts: list[str]) -> list[Any]:
    if isinstance(node, list):
        return [value for item in node for value in _source_values(item, parts)]
    if not parts:
        return [] if node is None else [node]
    if not isinstance(node, dict) or parts[0] not in node:
        return []
    return _source_values(node[parts[0]], parts[1:])


def hit_text(hit: Hit, paths: tuple[str, ...]) -> str:
    """The passage for the reranker: each path's values, in order, one per line.
    Read from `fields` (what the connector asked the engine for), else _source."""
    lines: list[str] = []
    for path in paths:
        values = hit.get("fields", {}).get(path)
        if values is None:
            values = _source_values(hit.get("_source", {}), path.split("."))
        lines.extend(str(v) for v in values if str(v).strip())
    return "\n".join(lines)


class SearchPlan:
    def __init__(self, request: SearchRequest, dialect: Dialect) -> None:
        self.request = request
        self.dialect = dialect
        settings = request.settings
        asked = request.body.get("fields", [])
        asked_names = {f if isinstance(f, str) else f.get("field") for f in asked}
        # Fetch the reranker's text (and stored vectors) through `fields`, leaving _source
        # as the caller set it.
        fetched = [*settings.fields, *([settings.stored_vectors.field] if settings.stored_vectors else [])]
        self.injected = [path for path in dict.fromkeys(fetched) if path not in asked_names]
        self.base = {**request.body, "from": 0, "size": request.window, "fields": [*asked, *self.injected]}

    @property
    def vector_text(self) -> str | None:
        """The text to embed, when the kNN stage has no vector of its own."""
        knn = self.request.knn
        if knn is None or knn.query_vector is not None:
            return None
        return knn.query_text or self.request.settings.query_text

    def calls(self, vector: list[float] | None) -> list[FirstStageCall]:
        request, knn = self.request, self.request.knn
        if knn is None:
            return [FirstStageCall(self.base, {})]
        vector = list(knn.query_vector) if knn.query_vector is not None else vector
        assert vector is not None, "a kNN stage needs its vector"
        k = knn.k or request.window
        if request.hybrid is None:
            return [self.dialect.knn_call(self.base, knn, vector, k)]
        if request.hybrid.native:
            return [
                self.dialect.native_hybrid_call(self.base, knn, vector, k, request.hybrid, request.window)
            ]
        keyword = {**self.base}
        vector_only = {key: value for key, value in self.base.items() if key not in ("aggs", "aggregations")}
        return [FirstStageCall(keyword, {}), self.dialect.knn_call(vector_only, knn, vector, k)]

    def candidates(self, responses: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Candidate]]:
        """The engine response to build on and the window's hits, in first-stage order."""
        base = responses[0]
        if len(responses) == 1:
            scored = [(hit, hit.get("_score")) for hit in base["hits"]["hits"]]
        else:
            hybrid = self.request.hybrid
            assert hybrid is not None
            lists = [response["hits"]["hits"] for response in responses]
            window = self.request.window
            if hybrid.method == "rrf":
                scored = list(reciprocal_rank_fusion(lists, hybrid.rank_constant, window))
            else:
                weights = [hybrid.keyword_weight, 1 - hybrid.keyword_weight]
                scored = list(linear_fusion(lists, weights, window))
            base = {
                **base,
                "took": sum(r.get("took", 0) for r in responses),
                "timed_out": any(r.get("timed_out", False) for r in responses),
            }
        candidates = [
            Candidate(hit, score, rank, hit_text(hit, self.request.settings.fields))
            for rank, (hit, score) in enumerate(scored, start=1)
        ]
        return base, candidates

    @staticmethod
    def documents(candidates: list[Candidate]) -> list[tuple[str, str]]:
        """What the reranker reads; ids are window positions, since hits of
        several indices may share an _id. Hits without text are not sent."""
        return [(str(i), c.text) for i, c in enumerate(candidates) if c.text]

    def respond(
        self,
        base: dict[str, Any],
        candidates: list[Candidate],
        ranking: Reranking | None,
        failure: str | None = None,
        timings_ms: dict[str, float] | None = None,
        vectors: StoredVectorUse | None = None,
    ) -> dict[str, Any]:
        settings = self.request.settings
        ordered: list[Ranked]
        if ranking is None:
            ordered = [Ranked(c, c.first_stage_score) for c in candidates]
        else:
            ordered = self._reranked(candidates, ranking)
            if settings.min_score is not None:
                # The threshold is on the model's own score: a blended score is
                # relative to its window and means nothing across queries.
                ordered = [
                    entry
                    for entry in ordered
                    if entry.reranker_score is not None and entry.reranker_score >= settings.min_score
                ]
            if settings.top_n is not None:
                ordered = ordered[: settings.top_n]
            # Hits with no text to read keep their first-stage order, after the scored ones.
            if settings.top_n is None and settings.min_score is None:
                ordered += [Ranked(c, None) for c in candidates if not c.text]
        start = self.request.page_from
        page = ordered[start : start + self.request.page_size]
        scores = [entry.score for entry in ordered if entry.score is not None]
        response = dict(base)
        response["hits"] = {
            **base["hits"],
            "max_score": max(scores) if scores else None,
            "hits": [self._hit(entry) for entry in page],
        }
        summary: dict[str, Any] = {
            "reranked": ranking is not None,
            "rank_window_size": self.request.window,
            "candidates": len(candidates),
        }
        if ranking is not None:
            summary["model"] = ranking.model
            if settings.blend is not None:
                summary["blend"] = settings.blend.describe()
        if vectors is not None:
            summary["stored_vectors"] = vectors.summary(ranking)
        if failure is not None:
            summary["error"] = failure
        if timings_ms:
            summary["took_ms"] = {stage: round(ms, 3) for stage, ms in timings_ms.items()}
        response[SUMMARY_KEY] = summary
        return response

    def _reranked(self, candidates: list[Candidate], ranking: Reranking) -> list[Ranked]:
        """The read candidates in their final order: the reranker's, or the blend's."""
        read = [(candidates[int(d.id)], d) for d in ranking.documents]
        blending = self.request.settings.blend
        if blending is None:
            return [Ranked(c, d.score, d.score, d.passage, d.source) for c, d in read]
        read.sort(key=lambda pair: pair[0].first_stage_rank)
        order = blend([c.first_stage_score for c, _ in read], [d.score for _, d in read], blending)
        return [
            Ranked(read[i][0], final, read[i][1].score, read[i][1].passage, read[i][1].source)
            for i, final in order
        ]

    def _hit(self, entry: Ranked) -> Hit:
        candidate = entry.candidate
        hit = dict(candidate.hit)
        hit["_score"] = entry.score
        hit[HIT_KEY] = {
            "first_stage_score": candidate.first_stage_score,
            "first_stage_rank": candidate.first_stage_rank,
            "reranked": entry.reranked,
        }
        if entry.reranked:
            hit[HIT_KEY]["reranker_score"] = entry.reranker_score
        if entry.source and self.request.settings.stored_vectors is not None:
            hit[HIT_KEY]["vector"] = entry.source
        shown = self.request.settings.best_passage
        if entry.passage is not None and shown != "none":
            passage = entry.passage
            text = candidate.text[passage.start : passage.end]
            best: dict[str, Any] = {"start": passage.start, "end": passage.end, "score": passage.score}
            if shown in ("text", "highlight"):
                best["text"] = text
            hit[HIT_KEY]["best_passage"] = best
            if shown == "highlight":
                hit["highlight"] = {**hit.get("highlight", {}), PASSAGE_HIGHLIGHT: [text]}
        if self.injected and "fields" in hit:
            kept = {k: v for k, v in hit["fields"].items() if k not in self.injected}
            if kept:
                hit["fields"] = kept
            else:
                del hit["fields"]
        return hit
