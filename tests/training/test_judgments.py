"""The judgments `rerank-bridge train` reads and splits, and the rows it trains on:
the formats users bring, the split that never leaks a held-out query, one line for
every ordinary mistake."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rerank_bridge.devtools import checkout
from rerank_bridge.evaluation.beir import load_collection
from rerank_bridge.training.arguments import add_arguments
from rerank_bridge.training.fitting import distillation_rows, ranking_rows, triplet_rows
from rerank_bridge.training.judgments import (
    JudgmentError,
    Judgments,
    Split,
    read_judgment_list,
    split,
)
from rerank_bridge.training.mining import Example

SCIFACT = checkout.shared_data("scifact")


def beir_folder(root: Path, queries: dict[str, str], qrels: list[tuple[str, str, int]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"passage {i}"}) + "\n" for i in range(40))
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{g}" for q, d, g in qrels)]
    (root / "qrels.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_ranklib_and_tab_separated_lists_read_alike(tmp_path: Path) -> None:
    ranklib = tmp_path / "judgments.txt"
    ranklib.write_text(
        "# grade qid # doc\n4 qid:1 # 7555 rambo\n0 qid:1 1:0.5 2:3 # 1368 rocky\n3 qid:2 # 99\n"
    )
    tabbed = tmp_path / "judgments.tsv"
    tabbed.write_text("query\tdoc\tgrade\n1\t7555\t4\n1\t1368\t0\n2\t99\t3\n")
    expected = {"1": {"7555": 4, "1368": 0}, "2": {"99": 3}}
    assert read_judgment_list(ranklib) == expected
    assert read_judgment_list(tabbed) == expected


def test_a_line_of_neither_format_is_named_by_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "judgments.tsv"
    bad.write_text("1\t7555\t4\n1 7555 four\n")
    with pytest.raises(JudgmentError, match=r"judgments.tsv:2: expected"):
        read_judgment_list(bad)


def test_a_folder_with_a_training_split_trains_on_it_and_holds_its_test_queries_out() -> None:
    made = split(SCIFACT, load_collection(SCIFACT), None, 0.2, seed=0)
    assert len(made.train.queries) > 700 and len(made.held_out.queries) == 300
    assert not set(made.train.queries) & set(made.held_out.queries)
    assert "training queries" in made.how


def test_a_judgment_list_is_split_by_seed_and_never_leaks(tmp_path: Path) -> None:
    queries = {f"q{i}": f"question {i}" for i in range(20)}
    folder = beir_folder(tmp_path / "c", queries, [(f"q{i}", f"d{i}", 1) for i in range(20)])
    judgments = tmp_path / "list.tsv"
    judgments.write_text("".join(f"q{i}\td{i}\t2\nq{i}\td{i + 20}\t0\n" for i in range(20)))
    collection = load_collection(folder)
    first, again = (split(folder, collection, judgments, 0.25, seed=3) for _ in range(2))
    other = split(folder, collection, judgments, 0.25, seed=4)
    assert first == again and first.held_out != other.held_out
    assert len(first.held_out.queries) == 5 and len(first.train.queries) == 15
    assert not set(first.train.queries) & set(first.held_out.queries)
    # The list's grades, not the folder's qrels.
    assert all(first.train.qrels[q][f"d{q[1:]}"] == 2 for q in first.train.queries)


@pytest.mark.parametrize(
    ("lines", "fraction", "message"),
    [
        ("q9\td1\t1\n", 0.5, r"1 judged query ids have no query text, e\.g\. q9"),
        ("q0\td1\t0\nq1\td2\t0\n", 0.5, r"no query has a relevant document"),
        ("q0\td1\t1\nq1\td2\t1\nq2\td3\t1\n", 0.5, r"3 judged queries are too few to hold 50% out"),
    ],
)
def test_ordinary_mistakes_are_one_line_each(
    tmp_path: Path, lines: str, fraction: float, message: str
) -> None:
    folder = beir_folder(tmp_path / "c", {f"q{i}": f"question {i}" for i in range(4)}, [("q0", "d0", 1)])
    judgments = tmp_path / "list.tsv"
    judgments.write_text(lines)
    with pytest.raises(JudgmentError, match=message):
        split(folder, load_collection(folder), judgments, fraction, seed=0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--temperature", "0"], "argument --temperature: must be above 0 and finite"),
        (["--temperature", "inf"], "argument --temperature: must be above 0 and finite"),
        (["--temperature", "warm"], "argument --temperature: expected a number"),
        (["--held-out", "1"], "argument --held-out: must be at least 0 and below 1"),
    ],
)
def test_argument_mistakes_are_one_line_from_the_parser(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="rerank-bridge train")
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "x", "--engine-url", "http://x", "--out", "o", *argv])
    assert message in capsys.readouterr().err


def test_a_split_that_shares_a_query_cannot_be_made() -> None:
    side = Judgments({"q1": "a question"}, {"q1": {"d1": 1}})
    with pytest.raises(AssertionError, match="both trained on and held out"):
        Split(train=side, held_out=side, how="by hand")


EXAMPLES = [
    Example(
        "one",
        "q1",
        "first",
        (("p1", "relevant one"),),
        (("n1", "near miss"), ("n2", "far miss")),
        ("n1", "p1", "n2"),
    ),
    Example(
        "two",
        "q2",
        "second",
        (("p2", "relevant two"), ("p3", "relevant three")),
        (("n3", "miss"),),
        ("p2", "n3"),
    ),
]


def test_the_rows_each_loss_reads() -> None:
    pairs = ranking_rows(EXAMPLES, "bce")
    assert list(zip(pairs["query"], pairs["passage"], pairs["label"], strict=True)) == [
        ("first", "relevant one", 1.0),
        ("first", "near miss", 0.0),
        ("first", "far miss", 0.0),
        ("second", "relevant two", 1.0),
        ("second", "relevant three", 1.0),
        ("second", "miss", 0.0),
    ]
    lists = ranking_rows(EXAMPLES, "listnet")
    assert lists["docs"][1] == ["relevant two", "relevant three", "miss"]
    assert lists["labels"][1] == [1.0, 1.0, 0.0]
    triplets = triplet_rows(EXAMPLES)
    assert len(triplets["anchor"]) == 1 * 2 + 2 * 1
    assert triplets["negative"][:2] == ["near miss", "far miss"]


def test_distillation_margins_are_the_teachers_standardised_within_each_query() -> None:
    # Scores on two scales: a bi-encoder's cosines (hundredths apart), a logit's spread.
    teachers = {"first": {"p1": 0.83, "n1": 0.81, "n2": 0.79}, "second": {"p2": 9.0, "p3": 3.0, "n3": 0.0}}
    rows = distillation_rows(EXAMPLES, lambda query, documents: teachers[query])
    margins = dict(zip(zip(rows["positive"], rows["negative"], strict=True), rows["label"], strict=True))
    # 0.83 vs 0.81 is one standard deviation (0.0163) apart...
    assert margins[("relevant one", "near miss")] == pytest.approx(0.02 / 0.016330, rel=1e-3)
    assert margins[("relevant one", "far miss")] == pytest.approx(2 * margins[("relevant one", "near miss")])
    # ...and the logits' order is kept on the same scale.
    assert margins[("relevant two", "miss")] > margins[("relevant three", "miss")] > 0


def test_a_blank_query_is_neither_evaluated_nor_trained_on(tmp_path: Path) -> None:
    """CMRC 2018's trial set judges two queries whose text is empty: no first stage can
    search them, so they count nowhere (before, mining one stopped the run)."""
    queries = {f"q{i}": f"question {i}" for i in range(8)} | {"blank": " ", "empty": ""}
    qrels = [(q, f"d{i}", 1) for i, q in enumerate(queries)]
    folder = beir_folder(tmp_path / "c", queries, qrels)
    collection = load_collection(folder)
    assert sorted(collection.queries) == [f"q{i}" for i in range(8)]
    made = split(folder, collection, None, 0.25, seed=0)
    assert sorted([*made.train.queries, *made.held_out.queries]) == [f"q{i}" for i in range(8)]
    listed = tmp_path / "list.tsv"
    listed.write_text("".join(f"{q}\td{i}\t1\n" for i, q in enumerate(queries)))
    from_list = split(folder, collection, listed, 0.25, seed=0)
    assert sorted([*from_list.train.queries, *from_list.held_out.queries]) == [f"q{i}" for i in range(8)]
