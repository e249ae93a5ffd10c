"""`rerank-bridge eval --tune` and the command's own checks, without an engine:
the cross-validated choice and its gate on records made to order, the
statistics against known cases, and every argument mistake as one line before
anything starts."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from rerank_bridge.bridge.config import load_config
from rerank_bridge.devtools import checkout
from rerank_bridge.devtools.local_engines import free_port
from rerank_bridge.evaluation.arguments import add_arguments
from rerank_bridge.evaluation.beir import collection_name, load_collection
from rerank_bridge.evaluation.cache import JsonCache
from rerank_bridge.evaluation.cli import run
from rerank_bridge.evaluation.measures import Qrels
from rerank_bridge.evaluation.records import RERANKED, QueryRecord
from rerank_bridge.evaluation.report import stem
from rerank_bridge.evaluation.runner import latency_summary
from rerank_bridge.evaluation.tuning import (
    GRID,
    Gate,
    bootstrap_interval,
    bridge_snippet,
    describe,
    paired_p_value,
    per_query_ndcg,
    setting_of,
    tune,
)

DATA = checkout.shared_data()


def records_where(
    reranker_knows: bool, queries: int = 40
) -> tuple[dict[str, dict[str, int]], list[QueryRecord]]:
    """Ten documents per query, the relevant one fourth in the first stage; the
    reranker puts it first (it knows) or last (it does not)."""
    qrels, records = {}, []
    for q in range(queries):
        docs = [f"q{q}-d{i}" for i in range(10)]
        relevant = docs[3]
        qrels[f"q{q}"] = {relevant: 1}
        first = [(doc, 10.0 - i) for i, doc in enumerate(docs)]
        scores = {doc: float(i % 5) / 10 for i, doc in enumerate(docs)}
        scores[relevant] = 1.0 if reranker_knows else -1.0
        records.append(QueryRecord("bm25", f"q{q}", "text", first, {10: scores}))
    return qrels, records


def test_a_reranker_that_knows_wins_held_out_and_its_snippet_applies_it(tmp_path: Path) -> None:
    qrels, records = records_where(reranker_knows=True)
    tuned = tune(qrels, records, depth=10, folds=5)
    assert tuned["rerank"] and tuned["verdict"].startswith("rerank with the blend")
    # The relevant document fourth: 1 / log2(5) for every query.
    assert tuned["blended_held_out"]["ndcg@10"] > tuned["first_stage"]["ndcg@10"] == pytest.approx(0.4307)
    assert tuned["p_value_vs_first_stage"] < 0.001
    low, high = tuned["blended_held_out"]["ci95"]
    assert low <= tuned["blended_held_out"]["ndcg@10"] <= high
    # The recommendation is the setting best on all the queries (the first of equals).
    best = max(GRID, key=lambda setting: per_query_ndcg(qrels, records, 10, setting).mean())
    assert tuned["recommended"] == describe(best)
    snippet = tmp_path / "docs.yaml"
    snippet.write_text(bridge_snippet("docs-*", ["title", "text"], "bm25", tuned))
    settings = load_config(snippet, {}).rerank_for("docs-2026")
    assert settings is not None and settings.fields == ("title", "text") and settings.rank_window_size == 10
    recommended = setting_of(tuned["recommended"])
    assert recommended is not None
    assert settings.blend == (recommended if recommended.weight < 1 else None)


def test_the_gate_says_do_not_rerank_where_nothing_beats_the_first_stage(tmp_path: Path) -> None:
    qrels, records = records_where(reranker_knows=False)
    tuned = tune(qrels, records, depth=10, folds=4)
    assert not tuned["rerank"] and tuned["verdict"].startswith("do not rerank this index")
    assert tuned["recommended"] == {"rerank": False}
    assert tuned["reranked"]["ndcg@10"] < tuned["first_stage"]["ndcg@10"]
    # Cross-validation never picked a losing blend on training folds: held out equals the first stage.
    assert tuned["blended_held_out"]["ndcg@10"] == tuned["first_stage"]["ndcg@10"]
    snippet = tmp_path / "docs.yaml"
    snippet.write_text(bridge_snippet("docs-*", ["text"], "bm25", tuned))
    assert "do not rerank" in snippet.read_text()
    assert load_config(snippet, {}).rerank_for("docs-2026") is None  # searches pass through


def records_where_it_helps_some(helped: int, queries: int = 40) -> tuple[Qrels, list[QueryRecord]]:
    """The reranker lifts the relevant document from second to first on `helped`
    queries and leaves the rest as the first stage has them."""
    qrels, records = {}, []
    for q in range(queries):
        docs = [f"q{q}-d{i}" for i in range(10)]
        qrels[f"q{q}"] = {docs[1]: 1}
        first = [(doc, 10.0 - i) for i, doc in enumerate(docs)]
        scores = {doc: 10.0 - i for i, doc in enumerate(docs)}
        if q < helped:
            scores[docs[1]] = 20.0
        records.append(QueryRecord("bm25", f"q{q}", "text", first, {10: scores}))
    return qrels, records


def test_the_gate_asks_for_a_significant_gain_and_any_gain_does_not() -> None:
    # Two queries of forty helped: a real held-out gain, too small to be told from chance.
    qrels, records = records_where_it_helps_some(helped=2)
    tuned = tune(qrels, records, depth=10, folds=5)
    assert tuned["gain_over_first_stage"] > 0 and tuned["p_value_vs_first_stage"] >= 0.05
    assert not tuned["rerank"] and "not significant" in tuned["verdict"]
    assert tuned["verdict"].startswith("do not rerank this index")
    loose = tune(qrels, records, depth=10, folds=5, gate=Gate(rule="any-gain"))
    assert loose["rerank"] and loose["verdict"].startswith("rerank with the blend")


def test_the_gate_weighs_a_significant_gain_against_the_reranks_latency() -> None:
    qrels, records = records_where_it_helps_some(helped=40)
    gain = tune(qrels, records, depth=10, folds=5)["gain_over_first_stage"]
    assert tune(qrels, records, depth=10, folds=5, cost_ms=100)["rerank"]
    # A latency at which the default 0.02 per second asks for more than the gain.
    slow = 1000 * gain / 0.02 * 1.5
    tuned = tune(qrels, records, depth=10, folds=5, cost_ms=slow)
    assert not tuned["rerank"] and "does not pay for" in tuned["verdict"]
    assert tuned["gate"] == {
        "rule": "significant", "significance": 0.05, "gain_per_second": 0.02, "rerank_ms_p50": slow
    }  # fmt: skip
    assert tune(qrels, records, depth=10, folds=5, gate=Gate(gain_per_second=0.0), cost_ms=slow)["rerank"]


def test_rankings_from_a_record_follow_the_connectors_rules() -> None:
    record = QueryRecord(
        "bm25", "q", "t", [("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 0.5)], {3: {"a": 0.1, "c": 0.9}}
    )
    assert record.ranking(3, None) == ["a", "b", "c", "d"]  # the first stage, untouched
    # c and a read and reordered, b (no text) after them, d beyond the depth as it was.
    assert record.ranking(3, RERANKED) == ["c", "a", "b", "d"]


def test_the_statistics_on_known_cases() -> None:
    same = np.array([0.2, 0.5, 0.9, 0.4])
    assert paired_p_value(same, same) == 1.0
    better = np.linspace(0.1, 0.9, 30)
    assert paired_p_value(better + 0.2, better) < 0.001
    assert bootstrap_interval(np.full(20, 0.5)) == [0.5, 0.5]
    low, high = bootstrap_interval(better)
    assert low < better.mean() < high


def test_latency_from_too_few_calls_is_marked() -> None:
    assert "latency_note" not in latency_summary([5.0] * 10, [50] * 10)
    few = latency_summary([5.0, 7.0], [2, 2])
    assert few["rerank_calls"] == 2 and "too few calls" in few["latency_note"]
    assert few["rerank_documents_p50"] == 2


def copy_collection(source: Path, target: Path, change: bool = False) -> Path:
    shutil.copytree(source, target)
    if change:
        lines = (target / "corpus.jsonl").read_text().splitlines()
        doc = json.loads(lines[0])
        lines[0] = json.dumps({**doc, "text": doc["text"] + " changed"})
        (target / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    return target


def test_collections_are_named_by_their_path_and_cached_by_their_content(tmp_path: Path) -> None:
    assert collection_name(Path("xquad-r/es")) == "xquad-r/es"
    assert collection_name(Path("../data/./xquad-r/es")) == "data/xquad-r/es"
    assert stem({"dataset": "xquad-r/es", "engine": "opensearch"}) == "xquad-r-es-opensearch"
    source = DATA / "xquad-r" / "en"
    same = load_collection(copy_collection(source, tmp_path / "a" / "en"))
    copy = load_collection(copy_collection(source, tmp_path / "b" / "en"))
    changed = load_collection(copy_collection(source, tmp_path / "c" / "en", change=True))
    assert same.fingerprint == copy.fingerprint != changed.fingerprint
    assert same.name != copy.name


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rerank-bridge eval")
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--depths", "10,abc"], "argument --depths: expected whole numbers separated by commas"),
        (["--depths", "0"], "argument --depths: each depth must be at least 1"),
        (["--stages", "bm25,sparse"], "argument --stages: unknown first stages sparse"),
        (["--folds", "1"], "argument --folds: cross-validation needs at least 2 folds"),
        (["--max-queries", "-3"], "argument --max-queries: must be at least 1"),
        (["--gate", "always"], "argument --gate: invalid choice: 'always'"),
        (["--min-gain-per-second", "-1"], "argument --min-gain-per-second: must be 0 or more"),
        (["--min-gain-per-second", "x"], "argument --min-gain-per-second: expected a number"),
    ],
)
def test_argument_mistakes_are_one_line_from_the_parser(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse("--data", "x", *argv)
    assert message in capsys.readouterr().err


def test_mistakes_found_before_anything_starts_are_one_line(tmp_path: Path) -> None:
    """Each is found before a server or node starts: the calls fail fast, with no engine."""
    missing = tmp_path / "nope"
    cases = [
        (parse("--data", str(missing)), f"--data: {missing} is not a folder"),
        (parse("--data", str(missing), "--chunking", "big"), "--chunking: expected SIZE[:OVERLAP]"),
        (parse("--data", str(tmp_path)), "has neither corpus.jsonl nor corpus.jsonl.gz"),
        (
            parse("--data", str(DATA / "cmrc2018-trial"), "--max-queries", "3", "--tune"),
            "--folds 5 needs at least 5 judged queries",
        ),
        (
            parse("--data", str(DATA / "cmrc2018-trial"), "--reranker", f"127.0.0.1:{free_port()}"),
            "no scoring server answers there",
        ),
        (parse("--data", str(DATA / "cmrc2018-trial")), "--engine-url: required"),
        (
            parse("--data", str(DATA / "cmrc2018-trial"), "--engine-url", f"http://127.0.0.1:{free_port()}"),
            "no engine answers there",
        ),
        (
            parse("--data", str(DATA / "cmrc2018-trial"), "--from-queries", str(missing), "--tune"),
            "is not a file",
        ),
        (parse("--data", str(DATA / "cmrc2018-trial"), "--from-queries", str(missing)), "add --tune"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as stopped:
            run(args)
        text = str(stopped.value.code)
        assert message in text and "\n" not in text, text


def test_a_snippet_is_yaml_the_bridge_reads() -> None:
    qrels, records = records_where(reranker_knows=True, queries=10)
    text = bridge_snippet("docs-*", ["text"], "bm25", tune(qrels, records, depth=10, folds=2))
    assert set(yaml.safe_load(text)) == {"indices"}


def test_rows_that_cannot_change_are_flagged_only_where_the_reranker_made_the_vectors() -> None:
    from rerank_bridge.evaluation.runner import unchangeable
    from rerank_bridge.search.client import ModelInfo

    same = ModelInfo(model_id="minilm", embed_model_id="minilm", kind="bi-encoder")
    assert "cannot change" in str(unchangeable("knn", same))
    assert "only the kNN half" in str(unchangeable("hybrid", same))
    assert unchangeable("bm25", same) is None
    # A different embedding model (eval --embed-model), or a reranker that reads pairs: every row can move.
    other = ModelInfo(model_id="minilm", embed_model_id="e5", kind="bi-encoder")
    cross = ModelInfo(model_id="bge", embed_model_id="bge", kind="cross-encoder")
    assert all(unchangeable(stage, info) is None for stage in ("knn", "hybrid") for info in (other, cross))


def test_scores_are_cached_in_the_users_cache_folder_unless_rerank_cache_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RERANK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert JsonCache("scores", "k").path == tmp_path / "xdg" / "rerank-bridge" / "scores" / "k.json"
    monkeypatch.setenv("RERANK_CACHE", str(tmp_path / "mine"))
    assert JsonCache("scores", "k").path == tmp_path / "mine" / "scores" / "k.json"
