"""Markdown table of `rerank-bridge eval --tune` JSON files (docs/evaluation.md's results table):
per collection, engine and first stage, nDCG@10 of the first stage, of reranking
alone and of the blend held out, with 95 % intervals, the setting chosen and the
gate's verdict; then the macro averages per engine and stage. With `--data` (the
folder the collections' names are paths in), also the best single settings over
every collection, from the per-query records: what one fixed default would give.

.venv/bin/python tools/eval_table.py bench/results/eval [--data ../shared/data]
.venv/bin/python tools/eval_table.py --models bench/results/eval-models/* [--stage bm25]

`--models`: one folder per reranker (each the `--out` of its runs, one engine): per
collection, the first stage and each model's reranking alone and held-out blend.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from rerank_bridge.evaluation.tuning import setting_name


def cell(summary: dict[str, Any]) -> str:
    low, high = summary["ci95"]
    return f"{summary['ndcg@10']:.3f} [{low:.2f}, {high:.2f}]"


def verdict(tuned: dict[str, Any]) -> str:
    if not tuned["rerank"]:
        said = tuned["verdict"]
        reasons = {"not significant": " (gain n.s.)", "does not pay": " (gain < cost)"}
        reason = next((short for long, short in reasons.items() if long in said), "")
        return f"**do not rerank**{reason}"
    significant = tuned["p_value_vs_first_stage"] < 0.05
    return f"rerank, blended (p = {tuned['p_value_vs_first_stage']:.2g}{'' if significant else ', n.s.'})"


def fixed_settings(reports: list[dict[str, Any]], data: Path) -> None:
    """Each setting of the tuning grid applied to every collection alike (one engine's
    records: the engines agree on these windows), macro nDCG@10 and the worst loss."""
    from rerank_bridge.evaluation import records
    from rerank_bridge.evaluation.beir import load_collection
    from rerank_bridge.evaluation.tuning import GRID, describe, per_query_ndcg

    means: dict[tuple[str, int], list[float]] = {}
    for report in reports:
        if report["engine"] != reports[0]["engine"]:
            continue
        qrels = load_collection(data / report["dataset"], report["queries"]).qrels
        kept = records.read(Path(report["per_query"]))
        for stage in report["tuning"]:
            stage_records = [r for r in kept if r.stage == stage]
            for i, setting in enumerate(GRID):
                value = float(per_query_ndcg(qrels, stage_records, max(report["depths"]), setting).mean())
                means.setdefault((stage, i), []).append(value)
    print()
    print("| first stage | one setting for every collection | macro nDCG@10 | worst change vs first stage |")
    print("|---|---|---|---|")
    for stage in dict.fromkeys(stage for stage, _ in means):
        ranked = sorted(((statistics.fmean(v), i) for (s, i), v in means.items() if s == stage), reverse=True)
        # The three best, and the two a user gets without a blend: no reranking, reranking alone.
        shown = [i for _, i in ranked[:3]] + [i for i in (0, 1) if i not in [j for _, j in ranked[:3]]]
        for i in shown:
            mean = statistics.fmean(means[(stage, i)])
            worst = min(a - b for a, b in zip(means[(stage, i)], means[(stage, 0)], strict=True))
            name = setting_name(describe(GRID[i]))
            print(f"| {stage} | {name} | {mean:.3f} | {worst:+.3f} |")


def models_table(folders: list[Path], stage: str) -> None:
    """Per collection: the first stage, then each model's reranked and blended nDCG@10."""
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in folders:
        reports = tuned_reports(folder)
        engine = min(r["engine"] for r in reports)  # one engine's: the engines agree on BM25 windows
        for r in reports:
            if r["engine"] == engine and stage in r["tuning"]:
                by_model.setdefault(r["model"], {})[r["dataset"]] = r["tuning"][stage]
    collections = sorted({name for runs in by_model.values() for name in runs})
    head = ["collection", stage] + [f"{model} {kind}" for model in by_model for kind in ("alone", "blended")]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for collection in collections:
        first = next(r[collection]["first_stage"]["ndcg@10"] for r in by_model.values() if collection in r)
        cells = [collection, f"{first:.3f}"]
        for runs in by_model.values():
            tuned = runs.get(collection)
            cells += (
                [f"{tuned['reranked']['ndcg@10']:.3f}", f"{tuned['blended_held_out']['ndcg@10']:.3f}"]
                if tuned
                else ["", ""]
            )
        print("| " + " | ".join(cells) + " |")


def tuned_reports(folder: Path) -> list[dict[str, Any]]:
    files = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return [report for report in files if "tuning" in report and report["results"]]


def main() -> None:
    if sys.argv[1] == "--models":
        stage = sys.argv[sys.argv.index("--stage") + 1] if "--stage" in sys.argv else "bm25"
        folders = [Path(a) for a in sys.argv[2:] if a != "--stage" and a != stage]
        models_table(folders, stage)
        return
    reports = tuned_reports(Path(sys.argv[1]))
    head = ["collection", "engine", "queries", "first stage", "nDCG@10 [95% CI]", "reranked top 50"]
    head += ["blended, held out", "chosen", "verdict"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    means: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for report in sorted(reports, key=lambda r: (r["dataset"], r["engine"])):
        for stage, tuned in report["tuning"].items():
            cells = [report["dataset"], report["engine"], str(report["queries"]), stage]
            cells += [cell(tuned["first_stage"]), cell(tuned["reranked"]), cell(tuned["blended_held_out"])]
            cells += [setting_name(tuned["recommended"]), verdict(tuned)]
            print("| " + " | ".join(cells) + " |")
            means.setdefault((report["engine"], stage), []).append(
                (
                    tuned["first_stage"]["ndcg@10"],
                    tuned["reranked"]["ndcg@10"],
                    tuned["blended_held_out"]["ndcg@10"],
                )
            )
    print()
    print("| engine | first stage | collections | first stage | reranked | blended, held out |")
    print("|---|---|---|---|---|---|")
    for (engine, stage), rows in sorted(means.items()):
        first, reranked, blended = (statistics.fmean(column) for column in zip(*rows, strict=True))
        print(f"| {engine} | {stage} | {len(rows)} | {first:.3f} | {reranked:.3f} | {blended:.3f} |")
    if "--data" in sys.argv:
        fixed_settings(reports, Path(sys.argv[sys.argv.index("--data") + 1]))


if __name__ == "__main__":
    main()
