"""docs/training.md's transfer table quotes its runs' JSON (bench/results/training/):
each figure is the report's own, rounded to three places, and the mean is theirs. The
table was once wrong while the JSON beside it was made again; this keeps them one."""

from __future__ import annotations

import json
import re
from statistics import fmean

from rerank_bridge.devtools import checkout

ROOT = checkout.root()
RESULTS = ROOT / "bench" / "results" / "training"
LANGUAGES = ("en", "de", "zh", "ar")
# Each table row and where its figures come from: (JSON file, report key).
ROWS = {
    "BM25 (the first stage)": ("transfer-bi-encoder-by-collection", "first_stage_ndcg@10"),
    "multilingual-e5-small reranking (the base model)": (
        "transfer-bi-encoder-by-collection",
        "base_reranked_ndcg@10",
    ),
    "first run, trained reranking": ("transfer-bi-encoder", "trained_reranked_ndcg@10"),
    "second run, trained reranking": ("transfer-bi-encoder-by-collection", "trained_reranked_ndcg@10"),
    "the base model blended with BM25 (held out)": (
        "transfer-bi-encoder-by-collection",
        "base_blended_ndcg@10",
    ),
    "second run, blended with BM25 (held out)": (
        "transfer-bi-encoder-by-collection",
        "trained_blended_ndcg@10",
    ),
}


def table_rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "training.md").read_text()
    section = text[text.index("### Across languages") :]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 1 + len(LANGUAGES) + 1:
            rows[cells[0]] = cells[1:]
    return rows


def by_language(name: str, key: str) -> list[float]:
    held_out = json.loads((RESULTS / f"{name}.json").read_text())["held_out"]
    found = {re.sub(r".*/", "", collection): row[key] for collection, row in held_out.items()}
    return [float(found[language]) for language in LANGUAGES]


def test_the_transfer_table_quotes_its_reports() -> None:
    rows = table_rows()
    assert set(ROWS) <= set(rows), sorted(rows)
    for label, (name, key) in ROWS.items():
        values = by_language(name, key)
        expected = [f"{value:.3f}" for value in [*values, fmean(values)]]
        assert rows[label] == expected, (label, rows[label], expected)
