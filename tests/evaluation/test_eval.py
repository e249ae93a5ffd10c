"""`rerank-bridge eval`: the metric code against hand-computed values, the BEIR
reader, and the whole command on a slice of a real collection and real engines."""

from __future__ import annotations

import argparse
import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest
from long_documents import build as build_long_documents

from rerank_bridge.bridge.config import load_config
from rerank_bridge.evaluation import report as report_module
from rerank_bridge.evaluation.arguments import add_arguments
from rerank_bridge.evaluation.beir import load_collection
from rerank_bridge.evaluation.cache import model_key
from rerank_bridge.evaluation.cli import run
from rerank_bridge.evaluation.measures import evaluate, ranked_run
from rerank_bridge.evaluation.tuning import setting_of
from rerank_bridge.search.client import ModelInfo
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import DATA, Engine
from support.raw_http import send


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


def test_cached_scores_tell_models_runtimes_and_precisions_apart() -> None:
    infos = [
        ModelInfo(model_id="model", model_digest="a1", dtype="float32", runtime="torch"),
        ModelInfo(model_id="model", model_digest="a1", dtype="float32", runtime="onnxruntime"),
        ModelInfo(model_id="model", model_digest="a1", dtype="int8", runtime="onnxruntime"),
        # Another model's files, served under the same id (every trained model is `model`).
        ModelInfo(model_id="model", model_digest="b2", dtype="float32", runtime="torch"),
    ]
    assert len({model_key(info.model_id, info.model_digest, info) for info in infos}) == 4
    # A server older than ModelInfo.runtime ran torch: its cache stays valid.
    older = ModelInfo(model_id="model", dtype="float32")
    assert model_key("model", "", older) == "model-torch-float32"


def test_beir_reader_handles_gzip_headers_and_samples(tmp_path: Path) -> None:
    folder = make_slice(tmp_path)
    collection = load_collection(folder)
    assert len(collection.corpus) == 251 and len(collection.queries) == 12
    assert all(any(g > 0 for g in collection.qrels[q].values()) for q in collection.queries)
    sample = load_collection(folder, max_queries=5)
    assert len(sample.queries) == 5 and sample.queries == load_collection(folder, max_queries=5).queries


def eval_args(engine: Engine, server: BackgroundServer, *argv: str) -> argparse.Namespace:
    """The command line a user types, parsed by the command's own parser. No
    --engine: the command reads what the node is."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--engine-url", engine.url, "--reranker", server.address, *argv])


@pytest.mark.live
def test_an_engine_url_of_the_other_kind_is_one_line_before_indexing(
    engine: Engine, scoring_server: BackgroundServer, tmp_path: Path
) -> None:
    other = "opensearch" if engine.kind == "elasticsearch" else "elasticsearch"
    args = eval_args(engine, scoring_server, "--data", str(make_slice(tmp_path)), "--engine", other)
    before = set(engine.client.indices.get(index="rerank-eval-*"))
    with pytest.raises(SystemExit) as stopped:
        run(args)
    said = f"--engine-url {engine.url} is {engine.kind}, not {other}: say --engine {engine.kind}"
    assert str(stopped.value.code) == f"{said}, or leave it out"
    assert set(engine.client.indices.get(index="rerank-eval-*")) == before


@pytest.mark.live
def test_eval_end_to_end_on_a_real_engine(
    engine: Engine, scoring_server: BackgroundServer, tmp_path: Path
) -> None:
    folder = make_slice(tmp_path)
    args = eval_args(
        engine,
        scoring_server,
        *("--data", str(folder), "--depths", "5,10", "--stages", "bm25,knn,hybrid"),
        *("--latency-queries", "3", "--out", str(tmp_path / "out"), "--tune", "--folds", "3"),
    )
    report = run(args)
    assert report["engine"] == engine.kind
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
    # Three calls are too few for a median to mean much: every timed row says so.
    assert all("too few calls" in row["latency_note"] for row in rows.values() if row["rerank_depth"])
    assert all("cannot change" in rows[("knn", d)]["note"] for d in (5, 10))
    # Named by the whole path given, not its last folder.
    assert report["dataset"].endswith(f"{tmp_path.name}/xquad-en-slice")
    stem = tmp_path / "out" / report_module.stem(report)
    assert Path(f"{stem}.json").exists() and Path(f"{stem}.png").stat().st_size > 5_000
    # One record per stage and query, with both inputs and the rankings made of them.
    lines = [json.loads(line) for line in Path(f"{stem}.queries.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * 12 and {line["stage"] for line in lines} == {"bm25", "knn", "hybrid"}
    for line in lines:
        window = [doc for doc, _ in line["first_stage"]]
        assert len(window) == len(set(window)) == 10
        assert sorted(line["final"]["reranked@10"]) == sorted(window)
        assert set(line["reranker_scores"]["10"]) <= set(window)
    assert set(report["tuning"]) == {"bm25", "knn", "hybrid"}
    # Re-tuned from the records alone (no engine, no server; gzipped, as the docs keep them): the same choice.
    packed = tmp_path / "records.queries.jsonl.gz"
    packed.write_bytes(gzip.compress(Path(f"{stem}.queries.jsonl").read_bytes()))
    again = run(argparse.Namespace(**{**vars(args), "from_queries": packed, "out": tmp_path / "again"}))
    assert {stage: t["recommended"] for stage, t in again["tuning"].items()} == {
        stage: t["recommended"] for stage, t in report["tuning"].items()
    }
    # Re-tuned from the file as eval named it: the outputs name the collection once.
    named = run(
        argparse.Namespace(
            **{**vars(args), "from_queries": Path(f"{stem}.queries.jsonl"), "out": tmp_path / "named"}
        )
    )
    assert report_module.stem(named) == f"{report_module.stem(report)}-retuned"
    apply_snippet(engine, scoring_server, report, tmp_path)
    # Run again: the index is found and reused, not rebuilt.
    indices_before = set(engine.client.indices.get(index="rerank-eval-*"))
    run(args)
    assert set(engine.client.indices.get(index="rerank-eval-*")) == indices_before
    for name in indices_before:
        engine.client.indices.delete(index=name)


def apply_snippet(engine: Engine, server: BackgroundServer, report: dict[str, Any], tmp_path: Path) -> None:
    """The bridge loads each snippet --tune wrote and does what it says: kNN's (the
    reranker made its vectors, so nothing can beat it) passes searches through
    untouched; BM25's reranks with the recommended blend, or passes through."""
    body = {"query": {"multi_match": {"query": "When did Tesla die?", "fields": ["title", "text"]}}}
    direct = engine.client.search(index=report["index"], body=body)
    direct_ids = [hit["_id"] for hit in direct["hits"]["hits"]]
    assert not report["tuning"]["knn"]["rerank"]
    for stage in ("knn", "bm25"):
        tuned = report["tuning"][stage]
        config = load_config(
            Path(tuned["config_snippet"]), {}, engine_url=engine.url, reranker=server.address
        )
        with RunningBridge(config) as bridge:
            answer = send(
                bridge.port,
                "POST",
                f"/{report['index']}/_search",
                {"Content-Type": "application/json"},
                json.dumps(body).encode(),
            ).json()
        ids = [hit["_id"] for hit in answer["hits"]["hits"]]
        if not tuned["rerank"]:
            assert "rerank" not in answer and ids == direct_ids
            continue
        assert answer["rerank"]["reranked"] and answer["rerank"]["rank_window_size"] == tuned["depth"]
        recommended = setting_of(tuned["recommended"])
        assert recommended is not None
        if recommended.weight == 1:  # the reranker alone: no blend section
            assert "blend" not in answer["rerank"]
        else:
            assert answer["rerank"]["blend"] == recommended.describe()


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
    engine: Engine, scoring_server: BackgroundServer, tmp_path: Path
) -> None:
    folder = tmp_path / "xquad-en-long"
    build_long_documents(folder, paragraphs_per_document=3)
    args = eval_args(
        engine,
        scoring_server,
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
