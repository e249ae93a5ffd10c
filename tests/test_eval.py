"""`rerank-bridge eval`: the metric code against hand-computed values, the BEIR
reader, and the whole command on a slice of a real collection and real engines."""

from __future__ import annotations

import argparse
import gzip
import json
import math
from pathlib import Path

import pytest
from live_fixtures import DATA, Engine
from long_documents import build as build_long_documents

from rerank_bridge_proto.v1 import rerank_pb2 as pb
from rerank_connectors.evaluation.arguments import add_arguments
from rerank_connectors.evaluation.beir import load_collection
from rerank_connectors.evaluation.cache import model_key
from rerank_connectors.evaluation.cli import run
from rerank_connectors.evaluation.measures import evaluate, ranked_run
from rerank_server.app import BackgroundServer


def test_metrics_match_a_hand_computed_case() -> None:
    qrels = {"q1": {"d1": 1, "d2": 0, "d3": 2}, "q2": {"d9": 1}}
    run = ranked_run({"q1": ["d2", "d1", "d3"], "q2": ["d8", "d7", "d6", "d9"]})
    got = evaluate(qrels, run, [2])
    # q1: DCG = 0 + 1/log2(3) + 2/log2(4); ideal = 2 + 1/log2(3). q2: 1/log2(5) over 1.
    ndcg_q1 = (1 / math.log2(3) + 2 / math.log2(4)) / (2 + 1 / math.log2(3))
    ndcg_q2 = 1 / math.log2(5)
    assert got["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-6)
    assert got["mrr@10"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert got["recall@2"] == pytest.approx((1 / 2 + 0) / 2)


def make_slice(root: Path, documents: int = 250, queries: int = 12) -> Path:
    """XQuAD-R English cut to its first documents and the queries answered by them,
    the corpus gzipped to exercise the transparent .gz reading."""
    source = DATA / "en"
    corpus = [json.loads(line) for line in (source / "corpus.jsonl").open()][:documents]
    # An empty passage, as Cranfield has: indexed for BM25, never embedded.
    corpus.append({"_id": "empty-doc", "title": "", "text": ""})
    kept = {doc["_id"] for doc in corpus}
    qrels = [line.rstrip("\n").split("\t") for line in list((source / "qrels.tsv").open())[1:]]
    answered = [q for q, d, _ in qrels if d in kept][:queries]
    folder = root / "xquad-en-slice"
    folder.mkdir()
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(doc) + "\n" for doc in corpus)
    all_queries = {json.loads(line)["_id"]: line for line in (source / "queries.jsonl").open()}
    (folder / "queries.jsonl").write_text("".join(all_queries[q] for q in answered))
    lines = ["query-id\tcorpus-id\tscore"] + ["\t".join(r) for r in qrels if r[0] in answered]
    (folder / "qrels.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_cached_scores_tell_runtimes_and_precisions_apart() -> None:
    infos = [
        pb.ModelInfo(model_id="minilm", dtype="float32", runtime="torch"),
        pb.ModelInfo(model_id="minilm", dtype="float32", runtime="onnxruntime"),
        pb.ModelInfo(model_id="minilm", dtype="int8", runtime="onnxruntime"),
    ]
    assert len({model_key(info.model_id, info) for info in infos}) == 3
    # A server older than ModelInfo.runtime ran torch: its cache stays valid.
    older = pb.ModelInfo(model_id="minilm", dtype="float32")
    assert model_key("minilm", older) == model_key("minilm", infos[0])


def test_beir_reader_handles_gzip_headers_and_samples(tmp_path: Path) -> None:
    folder = make_slice(tmp_path)
    collection = load_collection(folder)
    assert len(collection.corpus) == 251 and len(collection.queries) == 12
    assert all(any(g > 0 for g in collection.qrels[q].values()) for q in collection.queries)
    sample = load_collection(folder, max_queries=5)
    assert len(sample.queries) == 5 and sample.queries == load_collection(folder, max_queries=5).queries


def eval_args(engine: Engine, server: BackgroundServer, *argv: str) -> argparse.Namespace:
    """The command line a user types, parsed by the command's own parser."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(
        ["--engine", engine.kind, "--engine-url", engine.url, "--reranker", server.address, *argv]
    )


@pytest.mark.live
def test_eval_end_to_end_on_a_real_engine(
    engine: Engine, rerank_server: BackgroundServer, tmp_path: Path
) -> None:
    folder = make_slice(tmp_path)
    args = eval_args(
        engine,
        rerank_server,
        *("--data", str(folder), "--depths", "5,10", "--stages", "bm25,knn,hybrid"),
        *("--latency-queries", "3", "--out", str(tmp_path / "out")),
    )
    report = run(args)
    rows = {(r["stage"], r["rerank_depth"]): r for r in report["results"]}
    assert set(rows) == {(s, d) for s in ("bm25", "knn", "hybrid") for d in (0, 5, 10)}
    assert report["timed_queries"] == 3
    for row in rows.values():
        for name in ("ndcg@10", "mrr@10", "recall@5", "recall@10"):
            assert 0.0 <= row[name] <= 1.0
    # The reranker is the model that made the vectors: reranking kNN's window by it changes nothing.
    assert rows[("knn", 10)]["ndcg@10"] == pytest.approx(rows[("knn", 0)]["ndcg@10"], abs=1e-9)
    # Reranking never changes which documents are in the window, so recall at the depth holds.
    assert rows[("bm25", 10)]["recall@10"] == pytest.approx(rows[("bm25", 0)]["recall@10"])
    assert (tmp_path / "out" / f"xquad-en-slice-{engine.kind}.json").exists()
    assert (tmp_path / "out" / f"xquad-en-slice-{engine.kind}.png").stat().st_size > 5_000
    # Run again: the index is found and reused, not rebuilt.
    indices_before = set(engine.client.indices.get(index="rerank-eval-*"))
    run(args)
    assert set(engine.client.indices.get(index="rerank-eval-*")) == indices_before
    for name in indices_before:
        engine.client.indices.delete(index=name)


def test_long_documents_keep_each_answer_in_the_document_that_holds_it(tmp_path: Path) -> None:
    counts = build_long_documents(tmp_path / "long", paragraphs_per_document=3)
    collection = load_collection(tmp_path / "long")
    assert counts["documents"] == len(collection.corpus) < 1180 / 10
    sentences = {
        json.loads(line)["_id"]: json.loads(line)["text"] for line in (DATA / "en" / "corpus.jsonl").open()
    }
    source_qrels = [line.rstrip("\n").split("\t") for line in list((DATA / "en" / "qrels.tsv").open())[1:]]
    for query, sentence, _ in source_qrels[:200]:
        (relevant,) = [doc for doc, gain in collection.qrels[query].items() if gain > 0]
        assert sentences[sentence] in collection.corpus[relevant]["text"]


@pytest.mark.live
def test_eval_compares_head_truncation_with_chunking(
    engine: Engine, rerank_server: BackgroundServer, tmp_path: Path
) -> None:
    folder = tmp_path / "xquad-en-long"
    build_long_documents(folder, paragraphs_per_document=3)
    args = eval_args(
        engine,
        rerank_server,
        *("--data", str(folder), "--depths", "5", "--stages", "bm25", "--max-queries", "10"),
        *("--latency-queries", "2", "--out", str(tmp_path / "out")),
        *("--chunking", "32:8", "--max-document-tokens", "64"),
    )
    report = run(args)
    modes = {(r["rerank_depth"], r.get("long_documents")) for r in report["results"]}
    assert modes == {(0, None), (5, "head"), (5, "chunks")}
    assert report["chunking"] == {"size": 32, "overlap": 8} and report["max_document_tokens"] == 64
    by_mode = {r.get("long_documents"): r for r in report["results"]}
    # The same windows, read two ways: recall at the depth cannot move, the order can.
    assert by_mode["head"]["recall@5"] == by_mode["chunks"]["recall@5"] == by_mode[None]["recall@5"]
    assert by_mode["chunks"]["rerank_ms_p50"] > 0
    for name in engine.client.indices.get(index="rerank-eval-*"):
        engine.client.indices.delete(index=name)
