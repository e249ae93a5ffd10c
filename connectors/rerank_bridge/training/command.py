"""`rerank-bridge train`: a reranker fitted to the user's judgments, with hard
negatives from their own engine, judged on queries it never saw.

    rerank-bridge train --data ../shared/data/scifact --engine-url http://127.0.0.1:9200 --out scifact-ce

1. Each --data folder's judgments are split: training queries and held-out ones
   (judgments.py); the split is written to `<out>/split.json` and no held-out query is
   ever mined.
2. Each folder's corpus is indexed as `eval` indexes it (the same index is reused), and
   every document judged relevant must be in it.
3. Each training query's first-stage window is mined for hard negatives (mining.py);
   the examples of every folder go to `<out>/examples.jsonl`, and are trained on together.
4. The model is fitted (fitting.py), written to `<out>/model` for `rerank-bridge serve`
   and, unless --no-onnx, exported to `<out>/onnx` for the torch-free image (a listwise
   model is served with torch only).
5. Unless --no-report, `eval --tune` runs on the held-out queries (each folder's, or
   the --evaluate folders' instead) with the base model and with the trained one;
   `<out>/report.json` puts them side by side, by collection.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rerank_bridge.evaluation import cli as eval_cli
from rerank_bridge.evaluation.arguments import add_arguments as add_eval_arguments
from rerank_bridge.evaluation.beir import Collection, load_collection, read_jsonl
from rerank_bridge.evaluation.indexing import ensure_index
from rerank_bridge.evaluation.tuning import paired_p_value
from rerank_bridge.search.client import RerankClient
from rerank_bridge.search.connector import RerankingSearch
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server import export_command
from rerank_bridge.training.arguments import EXPORTS_TO_ONNX
from rerank_bridge.training.fitting import FitSettings, Teacher, fit
from rerank_bridge.training.judgments import JudgmentError, Judgments, Split, split
from rerank_bridge.training.mining import Example, check_indexed, mine


def _fresh_out(out: Path, resume: bool) -> None:
    """A run never writes over another's results: --out is new, or --resume says continue."""
    if resume:
        if not (out / "checkpoints").is_dir():
            raise SystemExit(f"--resume: {out} holds no checkpoints to continue from")
        return
    if out.exists() and any(out.iterdir()):
        raise SystemExit(
            f"--out {out} exists and is not empty: choose a new folder, or --resume the run there"
        )


@dataclass(frozen=True)
class TrainingSet:
    """One --data folder: its collection, read once, and the split of its judgments."""

    collection: Collection
    split: Split


@dataclass(frozen=True)
class Judged:
    """Queries the report judges the trained model on: a --data folder's held-out ones, or
    an --evaluate folder's every judged query."""

    collection: Collection
    judgments: Judgments


def _collection(folder: Path, flag: str) -> Collection:
    if not folder.is_dir():
        raise SystemExit(f"{flag}: {folder} is not a folder")
    try:
        return load_collection(folder)
    except FileNotFoundError as error:
        raise SystemExit(f"{flag}: {error}") from None


def _training_set(folder: Path, args: argparse.Namespace) -> TrainingSet:
    collection = _collection(folder, "--data")
    try:
        return TrainingSet(collection, split(folder, collection, args.judgments, args.held_out, args.seed))
    except JudgmentError as error:
        raise SystemExit(f"{'--judgments' if args.judgments else '--data'}: {error}") from None


def _read(args: argparse.Namespace) -> tuple[list[TrainingSet], list[Judged]]:
    """The training folders and what the report judges, every mistake refused before
    anything starts: a judgment list over several folders, --held-out 0 with nothing else
    to judge on, a folder both trained on and judged on, two folders of one name."""
    if args.judgments and len(args.data) > 1:
        raise SystemExit("--judgments: give one --data folder, the one whose queries the list judges")
    if args.held_out == 0 and not args.evaluate:
        raise SystemExit("--held-out 0 holds nothing out: give --evaluate folders to judge on instead")
    both = {folder.resolve() for folder in args.data} & {folder.resolve() for folder in args.evaluate}
    if both:
        raise SystemExit(
            f"--evaluate: {min(both)} is trained on too (--data); judge on folders training never saw"
        )
    sets = [_training_set(folder, args) for folder in args.data]
    evaluated = [_collection(folder, "--evaluate") for folder in args.evaluate]
    names = [c.name for c in [*(s.collection for s in sets), *evaluated]]
    if len(set(names)) < len(names):
        raise SystemExit(f"two folders are named {max(names, key=names.count)!r}: give each its own path")
    judged = [Judged(c, Judgments(c.queries, c.qrels)) for c in evaluated]
    return sets, judged or [Judged(s.collection, s.split.held_out) for s in sets]


def _cpu_bf16() -> bool:
    """bf16 training where the CPU multiplies bf16 natively (the serve auto rule's test)."""
    import torch

    from rerank_bridge.server.cpu_features import detect

    return not torch.cuda.is_available() and detect().native_bf16 is not None


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _example_row(example: Example) -> dict[str, Any]:
    return {
        "collection": example.collection,
        "query_id": example.query_id,
        "query": example.query,
        "positives": [doc for doc, _ in example.positives],
        "negatives": [doc for doc, _ in example.negatives],
        "window": list(example.window),
    }


def _teacher(reranker: RerankClient) -> Teacher:
    def scores(query: str, documents: Sequence[tuple[str, str]]) -> dict[str, float]:
        return {d.id: d.score for d in reranker.rerank(query, documents, timeout=600).documents}

    return scores


def write_held_out_folder(folder: Path, collection: Collection, held_out: Judgments) -> Path:
    """The held-out queries as a BEIR folder `eval` reads (the corpus as given)."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": doc, **fields} for doc, fields in collection.corpus.items()],
    )
    _write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": t} for q, t in held_out.queries.items()])
    with (folder / "qrels.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in held_out.qrels.items():
            for doc, gain in judged.items():
                handle.write(f"{query_id}\t{doc}\t{gain}\n")
    return folder


def held_out_report(args: argparse.Namespace, judged: Judged, model: Path, embedder: str) -> dict[str, Any]:
    """`eval --tune` on the judged queries, base model then trained, one stage and depth
    (the collection's corpus and name, so eval reuses the index training made)."""
    name = judged.collection.name
    folder = write_held_out_folder(args.out / "held-out" / name, judged.collection, judged.judgments)
    folds = max(2, min(5, len(judged.judgments.queries)))
    sample = ["--max-queries", str(args.report_queries)] if args.report_queries else []
    runs = {}
    for model_name, served in (("base", str(args.base)), ("trained", str(model))):
        parser = argparse.ArgumentParser()
        add_eval_arguments(parser)
        eval_args = parser.parse_args(
            [
                "--data", str(folder),
                "--name", name,
                "--engine-url", args.engine_url,
                "--model", served,
                "--embed-model", embedder,
                "--stages", args.stage,
                "--depths", str(args.depth),
                "--tune",
                "--folds", str(folds),
                "--out", str(args.out / "report" / name / model_name),
                *sample,
            ]
        )  # fmt: skip
        print(f"held-out evaluation on {name}: {model_name} model", file=sys.stderr, flush=True)
        runs[model_name] = eval_cli.run(eval_args)
    return summarise(runs, args.stage, args.depth)


def summarise(runs: dict[str, dict[str, Any]], stage: str, depth: int) -> dict[str, Any]:
    """First stage, base reranking, trained reranking and the trained model's blend, on
    the held-out queries (nDCG@10), with the gate's verdict and the bridge snippet."""

    def row(result: dict[str, Any], rerank_depth: int) -> dict[str, Any]:
        return next(r for r in result["results"] if r["stage"] == stage and r["rerank_depth"] == rerank_depth)

    def blended(result: dict[str, Any]) -> float | None:
        value = result.get("tuning", {}).get(stage, {}).get("blended_held_out", {}).get("ndcg@10")
        return None if value is None else float(value)

    trained = runs["trained"]
    return {
        "queries": trained["queries"],
        "first_stage_ndcg@10": row(runs["base"], 0)["ndcg@10"],
        "base_reranked_ndcg@10": row(runs["base"], depth)["ndcg@10"],
        "base_blended_ndcg@10": blended(runs["base"]),
        "trained_reranked_ndcg@10": row(trained, depth)["ndcg@10"],
        "trained_blended_ndcg@10": blended(trained),
        "trained_vs_base": trained_against_base(runs, stage, depth),
        "trained_tuning": trained.get("tuning", {}).get(stage, {}),
    }


def trained_against_base(runs: dict[str, dict[str, Any]], stage: str, depth: int) -> dict[str, float]:
    """Whether the trained model reranking alone beats the base model reranking alone on
    the same held-out queries: the mean nDCG@10 gain and its paired randomisation p."""

    def reranked(result: dict[str, Any]) -> dict[str, float]:
        records = read_jsonl(Path(result["per_query"]))
        return {r["query_id"]: r["ndcg@10"][f"reranked@{depth}"] for r in records if r["stage"] == stage}

    trained, base = reranked(runs["trained"]), reranked(runs["base"])
    queries = sorted(trained)
    ours, theirs = np.array([trained[q] for q in queries]), np.array([base[q] for q in queries])
    return {"gain": round(float((ours - theirs).mean()), 4), "p_value": paired_p_value(ours, theirs)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every argument and the judgments are checked before anything starts or is indexed."""
    _fresh_out(args.out, args.resume)
    sets, judged = _read(args)
    kind = eval_cli.engine_kind_at(args.engine_url, None)
    args.out.mkdir(parents=True, exist_ok=True)
    split_record = {
        s.collection.name: {
            "how": s.split.how,
            "train": sorted(s.split.train.queries),
            "held_out": sorted(s.split.held_out.queries),
        }
        for s in sets
    }
    (args.out / "split.json").write_text(json.dumps(split_record, indent=1))
    with ExitStack() as stack:
        from rerank_bridge.server.app import BackgroundServer
        from rerank_bridge.server.backends.registry import resolve_model
        from rerank_bridge.server.config import ServerConfig

        print(f"starting a scoring server on the base model {args.base}", file=sys.stderr, flush=True)
        server = BackgroundServer(
            ServerConfig(model=str(args.base), embed_model=args.embed_model, port=0, max_documents=1000)
        )
        stack.callback(server.stop)
        reranker = stack.enter_context(RerankClient(server.start().address, timeout=600))
        info = reranker.model_info()
        # The held-out evaluations embed with the model this index was made with.
        embedder = str(args.base) if info.embed_model_id == info.model_id else args.embed_model
        engine = DIALECTS[kind].client(args.engine_url, timeout=300)
        stack.callback(engine.close)
        indices: dict[str, str] = {}
        examples: list[Example] = []
        for training in sets:
            name = training.collection.name
            indices[name] = index = ensure_index(engine, training.collection, reranker)
            try:
                # The held-out queries' documents too: the report reranks their windows.
                check_indexed(engine, index, training.split.train, training.split.held_out)
            except JudgmentError as error:
                raise SystemExit(f"--data: {error}") from None
            examples += _mine(args, engine, reranker, index, training)
        _write_jsonl(args.out / "examples.jsonl", [_example_row(example) for example in examples])
        settings = FitSettings(
            kind=args.kind,
            base=resolve_model(str(args.base)),
            out=args.out,
            loss=args.loss,
            distill=args.distill,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            temperature=args.temperature,
            max_length=args.max_length,
            seed=args.seed,
            max_minutes=args.max_minutes,
            bf16=_cpu_bf16(),
            resume=args.resume,
            save_steps=args.save_steps,
        )
        started = time.monotonic()
        teacher = _teacher(reranker) if args.kind == "cross-encoder" else None
        fitted = fit(settings, examples, teacher)
        minutes = (time.monotonic() - started) / 60
    model = fitted.model
    summary: dict[str, Any] = {
        "model": str(model),
        "kind": args.kind,
        "base": str(args.base),
        "indices": indices,
        "split": {name: record["how"] for name, record in split_record.items()},
        "training_queries": sum(len(s.split.train.queries) for s in sets),
        "examples": len(examples),
        "training_minutes": round(minutes, 2),
        "steps": fitted.steps,
        "resumed_from_step": fitted.resumed_from_step,
        "bf16": settings.bf16,
    }
    if args.onnx and args.kind in EXPORTS_TO_ONNX:
        export_command.export(str(model), args.out / "onnx", args.kind)
        summary["onnx"] = str(args.out / "onnx")
    if args.report:
        summary["held_out"] = {j.collection.name: held_out_report(args, j, model, embedder) for j in judged}
    (args.out / "report.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


def _mine(
    args: argparse.Namespace, engine: Any, reranker: RerankClient, index: str, training: TrainingSet
) -> list[Example]:
    queries = len(training.split.train.queries)
    label = f"mining hard negatives ({training.collection.name})"
    with tqdm(total=queries, desc=label, unit="query") as bar:
        return mine(
            RerankingSearch(engine, reranker),
            index,
            training.collection,
            training.split.train,
            args.stage,
            args.depth,
            args.negatives,
            args.seed,
            progress=lambda done: bar.update(done - bar.n),
        )
