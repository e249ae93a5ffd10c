"""`rerank-bridge train`: a reranker fitted to the user's judgments, with hard
negatives from their own engine, judged on queries it never saw.

    rerank-bridge train --data ../shared/data/scifact --engine-url http://127.0.0.1:9200 --out scifact-ce

1. The judgments are split: training queries and held-out ones (judgments.py); the
   split is written to `<out>/split.json` and no held-out query is ever mined.
2. The folder's corpus is indexed as `eval` indexes it (the same index is reused), and
   every document judged relevant must be in it.
3. Each training query's first-stage window is mined for hard negatives (mining.py);
   the examples go to `<out>/examples.jsonl`.
4. The model is fitted (fitting.py), written to `<out>/model` for `rerank-bridge serve`
   and, unless --no-onnx, exported to `<out>/onnx` for the torch-free image (a listwise
   model is served with torch only).
5. Unless --no-report, `eval --tune` runs on the held-out queries with the base model
   and with the trained one; `<out>/report.json` puts them side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rerank_bridge.evaluation import cli as eval_cli
from rerank_bridge.evaluation.arguments import add_arguments as add_eval_arguments
from rerank_bridge.evaluation.beir import Collection, load_collection
from rerank_bridge.evaluation.indexing import ensure_index
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


def _read(args: argparse.Namespace) -> tuple[Collection, Split]:
    """The folder's collection, read once, and the split of its judgments."""
    if not args.data.is_dir():
        raise SystemExit(f"--data: {args.data} is not a folder")
    try:
        collection = load_collection(args.data)
    except FileNotFoundError as error:
        raise SystemExit(f"--data: {error}") from None
    try:
        return collection, split(args.data, collection, args.judgments, args.held_out, args.seed)
    except JudgmentError as error:
        raise SystemExit(f"{'--judgments' if args.judgments else '--data'}: {error}") from None


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


def held_out_report(
    args: argparse.Namespace, collection: Collection, held: Judgments, model: Path, embedder: str
) -> dict[str, Any]:
    """`eval --tune` on the held-out queries, base model then trained, one stage and depth
    (the collection's corpus and name, so eval reuses the index training made)."""
    folder = write_held_out_folder(args.out / "held-out", collection, held)
    folds = max(2, min(5, len(held.queries)))
    runs = {}
    for name, served in (("base", str(args.base)), ("trained", str(model))):
        parser = argparse.ArgumentParser()
        add_eval_arguments(parser)
        eval_args = parser.parse_args(
            [
                "--data", str(folder),
                "--name", collection.name,
                "--engine-url", args.engine_url,
                "--model", served,
                "--embed-model", embedder,
                "--stages", args.stage,
                "--depths", str(args.depth),
                "--tune",
                "--folds", str(folds),
                "--out", str(args.out / "report" / name),
            ]
        )  # fmt: skip
        print(f"held-out evaluation: {name} model", file=sys.stderr, flush=True)
        runs[name] = eval_cli.run(eval_args)
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
        "trained_tuning": trained.get("tuning", {}).get(stage, {}),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every argument and the judgments are checked before anything starts or is indexed."""
    _fresh_out(args.out, args.resume)
    collection, data_split = _read(args)
    kind = eval_cli.engine_kind_at(args.engine_url, None)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "split.json").write_text(
        json.dumps(
            {
                "how": data_split.how,
                "train": sorted(data_split.train.queries),
                "held_out": sorted(data_split.held_out.queries),
            },
            indent=1,
        )
    )
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
        index = ensure_index(engine, collection, reranker)
        try:
            # The held-out queries' documents too: the report reranks their windows.
            check_indexed(engine, index, data_split.train, data_split.held_out)
        except JudgmentError as error:
            raise SystemExit(f"--data: {error}") from None
        with tqdm(total=len(data_split.train.queries), desc="mining hard negatives", unit="query") as bar:
            examples = mine(
                RerankingSearch(engine, reranker),
                index,
                collection,
                data_split.train,
                args.stage,
                args.depth,
                args.negatives,
                args.seed,
                progress=lambda done: bar.update(done - bar.n),
            )
        _write_jsonl(args.out / "examples.jsonl", [_example_row(e) for e in examples])
        settings = FitSettings(
            kind=args.kind,
            base=resolve_model(str(args.base)),
            out=args.out,
            loss=args.loss,
            distill=args.distill,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=args.max_length,
            seed=args.seed,
            max_minutes=args.max_minutes,
            bf16=_cpu_bf16(),
            resume=args.resume,
            save_steps=args.save_steps,
        )
        started = time.monotonic()
        fitted = fit(settings, examples, _teacher(reranker) if args.kind == "cross-encoder" else None)
        minutes = (time.monotonic() - started) / 60
    model = fitted.model
    summary: dict[str, Any] = {
        "model": str(model),
        "kind": args.kind,
        "base": str(args.base),
        "index": index,
        "split": data_split.how,
        "training_queries": len(data_split.train.queries),
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
        summary["held_out"] = held_out_report(args, collection, data_split.held_out, model, embedder)
    (args.out / "report.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary
