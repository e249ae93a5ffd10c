"""What a lower precision costs in scores and in ranking quality, on real data.

The windows are real first stages: the BM25 top 30 Elasticsearch returned for
SciFact queries in the committed evaluation records (bench/results/eval), judged
by SciFact's relevance labels (../shared/data). Each precision reranks the same
windows as fp32; the test states how far its scores and its nDCG@10 may move.
`pytest -s tests/server/test_precision_quality.py` prints the table docs/benchmarks.md quotes.
"""

from __future__ import annotations

from pathlib import Path

import ir_measures
import pytest
from ir_measures import nDCG

from rerank_bridge.devtools import checkout
from rerank_bridge.evaluation import records
from rerank_bridge.evaluation.beir import load_collection
from rerank_bridge.server.backends.base import Backend, run_plan
from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.backends.torch_pointwise import load_bi_encoder
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, RerankRequest

pytestmark = pytest.mark.slow

ROOT = checkout.root()
SCIFACT = checkout.shared_data("scifact")
RECORDS = ROOT / "bench" / "results" / "eval" / "scifact-elasticsearch.queries.jsonl.gz"
QUERIES, WINDOW, DOCUMENT_TOKENS = 20, 30, 256

# Stated tolerances: the largest change of any one score, and of macro nDCG@10.
# MiniLM's scores are cosines; measured on this data: bf16 moves them by 0.004
# at most, int8 (ONNX Runtime, dynamic) by 0.02, and nDCG@10 by under 0.01.
POINTWISE_TOLERANCE = {"bfloat16": (0.015, 0.02), "int8": (0.05, 0.02)}
# The tiny listwise model's weights are random, so its scores crowd together and
# a small change reorders them more than a trained model's would: its nDCG@10
# bound is looser, its score bound is the same kind of cosine bound.
LISTWISE_TOLERANCE = (0.05, 0.1)


def windows() -> tuple[list[RerankRequest], dict[str, dict[str, int]]]:
    collection = load_collection(SCIFACT)
    chosen = [r for r in records.read(RECORDS) if r.stage == "bm25"][:QUERIES]
    requests = [
        RerankRequest(
            query=record.query,
            documents=tuple(
                Document(doc_id, collection.passage(doc_id)) for doc_id, _ in record.first_stage[:WINDOW]
            ),
            top_n=None,
            instruction="",
            max_query_tokens=512,
            max_document_tokens=DOCUMENT_TOKENS,
        )
        for record in chosen
    ]
    return requests, {r.query_id: collection.qrels[r.query_id] for r in chosen}


def scores(backend: Backend, requests: list[RerankRequest]) -> list[list[float]]:
    return [[d.score for d in run_plan(backend, backend.plan_rerank(r)).scored] for r in requests]


def macro_ndcg(
    qrels: dict[str, dict[str, int]], requests: list[RerankRequest], scored: list[list[float]]
) -> float:
    run = {
        query_id: {d.id: s for d, s in zip(request.documents, values, strict=True)}
        for query_id, request, values in zip(qrels, requests, scored, strict=True)
    }
    return float(ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10])


def compare(name: str, exact: Backend, quick: Backend, bounds: tuple[float, float]) -> tuple[float, float]:
    requests, qrels = windows()
    reference, changed = scores(exact, requests), scores(quick, requests)
    worst = max(
        abs(a - b) for x, y in zip(reference, changed, strict=True) for a, b in zip(x, y, strict=True)
    )
    before, after = macro_ndcg(qrels, requests, reference), macro_ndcg(qrels, requests, changed)
    print(
        f"\n{name}: largest score change {worst:.4f} (bound {bounds[0]}); nDCG@10 {before:.4f} -> "
        f"{after:.4f}, change {after - before:+.4f} (bound {bounds[1]}); {len(requests)} SciFact "
        f"queries, BM25 windows of {WINDOW}"
    )
    # The lower precision really is a different computation (else this could not fail)...
    assert worst > 1e-4
    # ...and stays within the stated bounds.
    assert worst <= bounds[0]
    assert abs(after - before) <= bounds[1]
    return worst, after - before


@pytest.fixture(scope="module")
def minilm_fp32(minilm_dir: Path) -> Backend:
    return load_bi_encoder(minilm_dir, "minilm", resolve_placement("cpu", "float32"), 512, 512)


def test_minilm_in_bf16_ranks_as_in_fp32(minilm_dir: Path, minilm_fp32: Backend) -> None:
    bf16 = load_bi_encoder(minilm_dir, "minilm", resolve_placement("cpu", "bfloat16"), 512, 512)
    compare("MiniLM bf16 vs fp32", minilm_fp32, bf16, POINTWISE_TOLERANCE["bfloat16"])


def test_minilm_in_int8_ranks_as_in_fp32(minilm_dir: Path, minilm_fp32: Backend) -> None:
    int8 = load_bi_encoder(minilm_dir, "minilm", resolve_placement("cpu", "float32"), 512, 512, "int8")
    compare("MiniLM int8 (ONNX Runtime) vs fp32", minilm_fp32, int8, POINTWISE_TOLERANCE["int8"])


def test_the_listwise_model_in_bf16_ranks_as_in_fp32(qwen_listwise_dir: Path) -> None:
    fp32, bf16 = (
        ListwiseBackend(qwen_listwise_dir, "tiny", resolve_placement("cpu", dtype), 512, DOCUMENT_TOKENS)
        for dtype in ("float32", "bfloat16")
    )
    compare("tiny listwise (Qwen3 vocabulary) bf16 vs fp32", fp32, bf16, LISTWISE_TOLERANCE)
