"""Markdown table of `rerank-bridge eval --tune` JSON files (the README's results table):
per collection, engine and first stage, nDCG@10 of the first stage, of reranking
alone and of the blend held out, with 95 % intervals, the setting chosen and the
gate's verdict; then the macro averages per engine and stage.

.venv/bin/python tools/eval_table.py bench/results/eval
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def cell(summary: dict[str, Any]) -> str:
    low, high = summary["ci95"]
    return f"{summary['ndcg@10']:.3f} [{low:.2f}, {high:.2f}]"


def chosen(setting: dict[str, Any]) -> str:
    if not setting["rerank"]:
        return "first stage alone"
    if setting["weight"] == 1:
        return "reranker alone"
    return f"{setting['normalizer']} w={setting['weight']}"


def verdict(tuned: dict[str, Any]) -> str:
    if not tuned["rerank"]:
        return "**do not rerank**"
    significant = tuned["p_value_vs_first_stage"] < 0.05
    return f"rerank, blended (p = {tuned['p_value_vs_first_stage']:.2g}{'' if significant else ', n.s.'})"


def main() -> None:
    files = [json.loads(path.read_text()) for path in sorted(Path(sys.argv[1]).glob("*.json"))]
    reports = [report for report in files if "tuning" in report and report["results"]]
    head = ["collection", "engine", "queries", "first stage", "nDCG@10 [95% CI]", "reranked top 50"]
    head += ["blended, held out", "chosen", "verdict"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    means: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for report in sorted(reports, key=lambda r: (r["dataset"], r["engine"])):
        for stage, tuned in report["tuning"].items():
            cells = [report["dataset"], report["engine"], str(report["queries"]), stage]
            cells += [cell(tuned["first_stage"]), cell(tuned["reranked"]), cell(tuned["blended_held_out"])]
            cells += [chosen(tuned["recommended"]), verdict(tuned)]
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


if __name__ == "__main__":
    main()
