"""`rerank-bridge train` end to end against real engines: negatives mined from the
engine's own first stage (never a judged-relevant document, the window exactly the
engine's), a tiny cross-encoder trained until it ranks a planted relevant document
first on queries it never saw, a checkpoint resumed, the held-out report, and the
refusals a user meets first.

The listwise model (the tiny random Qwen3) is fine-tuned by the same command.

The collection is made here: each query's relevant passage and four near-misses share
the query's words (so BM25 cannot tell them apart), and only the relevant one carries
the word "evidence". A reranker that learnt from the mined windows puts it first; the
untrained one, a random tiny BERT, does so about one time in five.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rerank_bridge.cli.main import parser
from rerank_bridge.devtools.tiny_models import WORDS
from rerank_bridge.search import RerankClient
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import BUILTIN_MINILM, ServerConfig
from support.live_fixtures import EngineAt

pytestmark = pytest.mark.slow

MARK = "evidence"
VOCABULARY = [w for w in WORDS if w != MARK]
TRAIN_QUERIES, TEST_QUERIES, NEAR_MISSES = 40, 16, 4


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def planted_collection(folder: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    corpus: list[dict[str, str]] = []
    queries: dict[str, str] = {}
    qrels: dict[str, str] = {}

    def passage(words: list[str], extra: list[str]) -> str:
        text = words + rng.sample(VOCABULARY, 6) + extra
        rng.shuffle(text)
        return " ".join(text)

    for i in range(TRAIN_QUERIES + TEST_QUERIES):
        words = rng.sample(VOCABULARY, 3)
        queries[f"q{i}"] = " ".join(words)
        qrels[f"q{i}"] = f"q{i}-relevant"
        corpus.append({"_id": f"q{i}-relevant", "title": "", "text": passage(words, [MARK])})
        corpus += [
            {"_id": f"q{i}-miss{j}", "title": "", "text": passage(words, [rng.choice(VOCABULARY)])}
            for j in range(NEAR_MISSES)
        ]
    corpus += [
        {"_id": f"bg{i}", "title": "", "text": " ".join(rng.sample(VOCABULARY, 10))} for i in range(100)
    ]
    folder.mkdir(parents=True)
    _write_jsonl(folder / "corpus.jsonl", corpus)
    for name, ids in (
        ("_train", range(TRAIN_QUERIES)),
        ("", range(TRAIN_QUERIES, TRAIN_QUERIES + TEST_QUERIES)),
    ):
        _write_jsonl(
            folder / f"queries{name}.jsonl", [{"_id": f"q{i}", "text": queries[f"q{i}"]} for i in ids]
        )
        lines = ["query-id\tcorpus-id\tscore", *(f"q{i}\t{qrels[f'q{i}']}\t1" for i in ids)]
        (folder / f"qrels{name}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def trainable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT initialised as BERT is (the parity tests' spreads too wide to learn from)."""
    from rerank_bridge.devtools.tiny_models import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("trainable") / "cross-encoder", initializer_range=0.02)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return planted_collection(tmp_path_factory.mktemp("planted") / "planted")


@pytest.fixture
def made_indices(engine_url: EngineAt) -> Iterator[list[str]]:
    """The indices a test's runs made (eval keeps its indices for reuse), deleted after it."""
    made: list[str] = []
    yield made
    engine = DIALECTS[engine_url.kind].client(engine_url.url)
    for index in set(made):
        engine.indices.delete(index=index, ignore_unavailable=True)
    engine.close()


def train(made: list[str], *extra: str) -> dict[str, Any]:
    args = parser().parse_args(["train", *extra])
    from rerank_bridge.training.command import run

    summary = run(args)
    made.extend(summary["indices"].values())
    return summary


def common(planted: Path, engine_url: EngineAt, base: Path, out: Path) -> list[str]:
    return [
        "--data", str(planted),
        "--engine-url", engine_url.url,
        "--base", str(base),
        "--embed-model", BUILTIN_MINILM,
        "--out", str(out),
        "--depth", "10",
        "--negatives", str(NEAR_MISSES),
        "--batch-size", "8",
        "--learning-rate", "1e-3",
        "--no-distill",
        "--no-onnx",
    ]  # fmt: skip


def only(indices: dict[str, str]) -> str:
    (index,) = indices.values()
    return index


def first_is_relevant(model: Path, engine_url: EngineAt, planted: Path, index: str) -> float:
    """Share of held-out queries whose BM25 window of 10, reranked by `model`, starts with
    the planted relevant passage."""
    engine = DIALECTS[engine_url.kind].client(engine_url.url)
    queries = [json.loads(line) for line in (planted / "queries.jsonl").open()]
    server = BackgroundServer(ServerConfig(model=str(model), embed_model="none", port=0))
    firsts = 0
    try:
        with RerankClient(server.start().address) as client:
            for query in queries:
                body = {"query": {"match": {"text": query["text"]}}, "size": 10}
                hits = engine.search(index=index, body=body)["hits"]["hits"]
                ranked = client.rerank(query["text"], [(h["_id"], h["_source"]["text"]) for h in hits])
                firsts += ranked.documents[0].id == f"{query['_id']}-relevant"
    finally:
        server.stop()
        engine.close()
    return firsts / len(queries)


def test_training_mines_the_engines_window_and_learns_what_the_judgments_say(
    planted: Path, engine_url: EngineAt, trainable: Path, tmp_path: Path, made_indices: list[str]
) -> None:
    out = tmp_path / "run"
    summary = train(
        made_indices, *common(planted, engine_url, trainable, out), "--epochs", "20", "--no-report"
    )
    (split,) = json.loads((out / "split.json").read_text()).values()
    examples = [json.loads(line) for line in (out / "examples.jsonl").open()]
    # The held-out queries are the folder's test queries, and none was mined or trained on.
    assert set(split["held_out"]) == {f"q{i}" for i in range(TRAIN_QUERIES, TRAIN_QUERIES + TEST_QUERIES)}
    assert not {e["query_id"] for e in examples} & set(split["held_out"])
    assert len(examples) == TRAIN_QUERIES == summary["examples"]
    (index,) = summary["indices"].values()
    engine = DIALECTS[engine_url.kind].client(engine_url.url)
    for example in examples:
        # No judged-relevant document among the negatives; each is from the window...
        assert f"{example['query_id']}-relevant" not in example["negatives"]
        assert example["positives"] == [f"{example['query_id']}-relevant"]
        assert (
            set(example["negatives"]) <= set(example["window"]) and len(example["negatives"]) == NEAR_MISSES
        )
        # ...and the window is the engine's own first stage at the depth asked.
        body = {
            "query": {"multi_match": {"query": example["query"], "fields": ["title", "text"]}},
            "size": 10,
        }
        hits = engine.search(index=index, body=body)["hits"]["hits"]
        assert example["window"] == [hit["_id"] for hit in hits]
    engine.close()
    trained = first_is_relevant(out / "model", engine_url, planted, index)
    untrained = first_is_relevant(trainable, engine_url, planted, index)
    # The whole window of 10 is reranked, background passages the training rarely saw
    # as negatives included: 13 of 16 on both engines when written.
    assert trained >= 0.75, (trained, untrained)
    assert untrained <= 0.4, (trained, untrained)


@pytest.mark.engines("elasticsearch")
def test_a_run_resumes_from_its_checkpoint_and_never_overwrites_another(
    planted: Path, engine_url: EngineAt, trainable: Path, tmp_path: Path, made_indices: list[str]
) -> None:
    out = tmp_path / "run"
    args = [*common(planted, engine_url, trainable, out), "--epochs", "2", "--no-report"]
    # A budget spent at the first step: training stops there and keeps a checkpoint.
    stopped = train(made_indices, *args, "--max-minutes", "0.00001")
    assert (stopped["steps"], stopped["resumed_from_step"]) == (1, 0)
    assert [path.name for path in (out / "checkpoints").glob("checkpoint-*")] == ["checkpoint-1"]
    with pytest.raises(SystemExit, match="exists and is not empty"):
        train(made_indices, *args)
    resumed = train(made_indices, *args, "--resume")
    steps_per_epoch = -(-TRAIN_QUERIES // 8)  # listnet: a row per query, 8 a batch
    assert (resumed["steps"], resumed["resumed_from_step"]) == (2 * steps_per_epoch, 1)
    with pytest.raises(SystemExit, match="holds no checkpoints"):
        train(made_indices, *common(planted, engine_url, trainable, tmp_path / "new"), "--resume")
    # Judgments of documents the index does not hold: refused before any mining.
    foreign = tmp_path / "foreign.tsv"
    foreign.write_text("".join(f"q{i}\tq{i}-relevant\t1\n" for i in range(20)) + "q0\telsewhere-7\t1\n")
    with pytest.raises(
        SystemExit, match=r"does not hold 1 of the 21 documents judged relevant, e\.g\. elsewhere-7"
    ):
        train(
            made_indices,
            *common(planted, engine_url, trainable, tmp_path / "foreign"),
            "--judgments",
            str(foreign),
        )
    # Several folders: refused before anything starts where the request makes no sense.
    fresh = common(planted, engine_url, trainable, tmp_path / "several")
    refusals = {
        "--held-out 0 holds nothing out": ["--held-out", "0"],
        "is trained on too": ["--evaluate", str(planted)],
        "give one --data folder": ["--data", str(tmp_path), "--judgments", str(foreign)],
        "two folders are named": ["--data", str(planted)],
    }
    for message, extra in refusals.items():
        with pytest.raises(SystemExit, match=message):
            train(made_indices, *fresh, *extra)


@pytest.mark.engines("opensearch")
def test_a_bi_encoder_is_fine_tuned_behind_its_prompts_and_exported_for_the_torch_free_server(
    planted: Path, engine_url: EngineAt, tmp_path: Path, made_indices: list[str]
) -> None:
    from rerank_bridge.server.backends.registry import builtin_minilm_folder

    out = tmp_path / "run"
    base = builtin_minilm_folder()
    with_onnx = [argument for argument in common(planted, engine_url, base, out) if argument != "--no-onnx"]
    # A pretrained model's learning rate, not the tiny one's; no report: the test reranks itself.
    arguments = [
        *with_onnx,
        "--kind",
        "bi-encoder",
        "--epochs",
        "8",
        "--learning-rate",
        "2e-4",
        "--no-report",
    ]
    summary = train(made_indices, *arguments)
    assert summary["kind"] == "bi-encoder" and (out / "onnx").is_dir()
    trained = first_is_relevant(out / "onnx", engine_url, planted, only(summary["indices"]))
    untrained = first_is_relevant(base, engine_url, planted, only(summary["indices"]))
    assert trained >= untrained + 0.3, (trained, untrained)


@pytest.mark.engines("opensearch")
def test_several_collections_train_one_model_judged_on_one_it_never_saw(
    planted: Path, engine_url: EngineAt, trainable: Path, tmp_path: Path, made_indices: list[str]
) -> None:
    """Two planted collections trained on together (their query ids the same: q0, q1...),
    the report judging on a third, as the cross-language transfer experiment does."""
    second = planted_collection(tmp_path / "second", seed=1)
    unseen = planted_collection(tmp_path / "unseen", seed=2)
    out = tmp_path / "run"
    summary = train(
        made_indices,
        *common(planted, engine_url, trainable, out),
        "--data", str(second),
        "--evaluate", str(unseen),
        "--epochs", "10",
    )  # fmt: skip
    examples = [json.loads(line) for line in (out / "examples.jsonl").open()]
    names = {str(planted).lstrip("/"), str(second).lstrip("/")}
    assert set(summary["indices"]) == set(json.loads((out / "split.json").read_text())) == names
    assert {e["collection"] for e in examples} == names and len(examples) == 2 * TRAIN_QUERIES
    (unseen_name,) = summary["held_out"]
    held = summary["held_out"][unseen_name]
    assert unseen_name == str(unseen).lstrip("/") and held["queries"] == TEST_QUERIES
    # BM25 cannot tell the planted passage from its near-misses; the trained reranker can.
    assert held["trained_reranked_ndcg@10"] > held["first_stage_ndcg@10"] + 0.2
    assert held["trained_reranked_ndcg@10"] > held["base_reranked_ndcg@10"] + 0.2
    # The same comparison query by query: the mean gain is the two means' difference.
    gain = held["trained_reranked_ndcg@10"] - held["base_reranked_ndcg@10"]
    assert held["trained_vs_base"]["gain"] == pytest.approx(gain, abs=1e-4)
    assert held["trained_vs_base"]["p_value"] < 0.05
    assert held["trained_tuning"]["recommended"]
    assert json.loads((out / "report.json").read_text())["held_out"] == summary["held_out"]


@pytest.mark.engines("elasticsearch")
def test_the_listwise_model_is_fine_tuned_on_the_mined_windows(
    planted: Path, engine_url: EngineAt, listwise_dir: Path, tmp_path: Path, made_indices: list[str]
) -> None:
    out = tmp_path / "run"
    arguments = [*common(planted, engine_url, listwise_dir, out), "--kind", "listwise", "--no-report"]
    summary = train(made_indices, *arguments, "--epochs", "20", "--learning-rate", "5e-4")
    assert summary["kind"] == "listwise" and "onnx" not in summary
    trained = first_is_relevant(out / "model", engine_url, planted, only(summary["indices"]))
    untrained = first_is_relevant(listwise_dir, engine_url, planted, only(summary["indices"]))
    # 8 of 16 against 1 of 16 when written (a 2-layer random decoder, 100 steps).
    assert trained >= untrained + 0.3, (trained, untrained)
