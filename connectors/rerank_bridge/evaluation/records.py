"""One record per (first stage, query): what the engine returned, what the
reranker said, and the rankings made from them. Written as JSON lines, so a
user can audit a run and re-tune a blend without the engine or the server
(`rerank-bridge eval --tune --from-queries FILE`)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_bridge.search.blending import BlendSettings, blend

# The reranker's order alone is the blend that gives it all the weight.
RERANKED = BlendSettings(weight=1.0)


@dataclass
class QueryRecord:
    stage: str
    query_id: str
    query: str
    # The window at the deepest depth, in first-stage order: (doc id, score).
    first_stage: list[tuple[str, float | None]]
    # Per depth, the reranker's score of each document of window[:depth] it read
    # (documents without text are not sent). A pointwise score is the same at every
    # depth; a listwise one depends on the window.
    reranker: dict[int, dict[str, float]]

    def ranking(self, depth: int, settings: BlendSettings | None) -> list[str]:
        """The final order as the connector makes it: the read documents of the top
        `depth` blended, those it could not read after them, then the rest of the
        window as it was. None: the first stage's order, untouched."""
        if settings is None:
            return [doc for doc, _ in self.first_stage]
        window = self.first_stage[:depth]
        scores = self.reranker.get(depth, {})
        read = [(doc, score) for doc, score in window if doc in scores]
        order = blend([score for _, score in read], [scores[doc] for doc, _ in read], settings)
        head = [read[i][0] for i, _ in order]
        unread = [doc for doc, _ in window if doc not in scores]
        return head + unread + [doc for doc, _ in self.first_stage[depth:]]

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "query_id": self.query_id,
            "query": self.query,
            "first_stage": [[doc, score] for doc, score in self.first_stage],
            "reranker_scores": {str(depth): scores for depth, scores in self.reranker.items()},
        }

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> QueryRecord:
        return cls(
            stage=line["stage"],
            query_id=str(line["query_id"]),
            query=line["query"],
            first_stage=[(str(doc), score) for doc, score in line["first_stage"]],
            reranker={int(depth): scores for depth, scores in line["reranker_scores"].items()},
        )


def write(path: Path, records: list[QueryRecord], extras: dict[tuple[str, str], dict[str, Any]]) -> None:
    """`extras`, per (stage, query id): the final rankings and metrics to show beside the inputs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            line = {**record.to_json(), **extras.get((record.stage, record.query_id), {})}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def read(path: Path) -> list[QueryRecord]:
    """The records of a file `write` wrote, gzipped or not (by its `.gz` suffix)."""
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(QueryRecord.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"{path}:{number}: not a per-query record ({error})") from None
    return records
