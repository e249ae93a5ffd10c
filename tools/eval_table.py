"""Markdown table of `rerank-bridge eval` JSON files (the README's results table).

.venv/bin/python tools/eval_table.py eval-results/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    files = [json.loads(path.read_text()) for path in sorted(Path(sys.argv[1]).glob("*.json"))]
    reports = [report for report in files if "dataset" in report]  # bench JSON lives there too
    depths = sorted({d for report in reports for d in report["depths"]})
    head = ["collection", "engine", "queries", "first stage", "nDCG@10"]
    head += [f"reranked top {d}" for d in depths] + [f"recall@{max(depths)}", "MRR@10 best"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for report in reports:
        for stage in dict.fromkeys(row["stage"] for row in report["results"]):
            rows = {row["rerank_depth"]: row for row in report["results"] if row["stage"] == stage}
            cells = [
                report["dataset"],
                report["engine"],
                str(report["queries"]),
                stage,
                f"{rows[0]['ndcg@10']:.3f}",
            ]
            cells += [f"{rows[d]['ndcg@10']:.3f}" if d in rows else "" for d in depths]
            cells += [
                f"{rows[0][f'recall@{max(depths)}']:.3f}",
                f"{max(r['mrr@10'] for r in rows.values()):.3f}",
            ]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
