"""The evaluation's outputs: a terminal table, a JSON file and a PNG plot of
nDCG@10 against the number of candidates reranked, one line per first stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def table(report: dict[str, Any]) -> str:
    depths = report["depths"]
    recall = f"recall@{max(depths)}"
    columns = [
        "first stage".ljust(12),
        "reranked".rjust(9),
        "docs as".rjust(7),
        "nDCG@10".rjust(8),
        "MRR@10".rjust(8),
    ]
    header = " ".join([*columns, recall.rjust(11), "stage ms".rjust(9), "rerank ms".rjust(10)])
    lines = [
        f"{report['dataset']} on {report['engine']}: {report['queries']} queries, "
        f"{report['documents']} documents, reranker {report['model']} ({report['model_kind']})",
        header,
        "-" * len(header),
    ]
    for row in report["results"]:
        depth = "none" if row["rerank_depth"] == 0 else f"top {row['rerank_depth']}"
        rerank_ms = f"{row['rerank_ms_p50']:>10.1f}" if "rerank_ms_p50" in row else f"{'':>10}"
        read_as = row.get("long_documents", "head") if row["rerank_depth"] else ""
        lines.append(
            f"{row['stage']:<12} {depth:>9} {read_as:>7} {row['ndcg@10']:>8.4f} {row['mrr@10']:>8.4f} "
            f"{row[recall]:>11.4f} {row['first_stage_ms_p50']:>9.1f} {rerank_ms}"
        )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    modes = list(dict.fromkeys(r["long_documents"] for r in report["results"] if "long_documents" in r))
    for stage in dict.fromkeys(row["stage"] for row in report["results"]):
        for mode in modes or [None]:
            rows = sorted(
                (
                    r
                    for r in report["results"]
                    if r["stage"] == stage and (r["rerank_depth"] == 0 or r.get("long_documents") == mode)
                ),
                key=lambda r: r["rerank_depth"],
            )
            label = stage if mode is None else f"{stage}, {mode}"
            axes.plot(
                [r["rerank_depth"] for r in rows], [r["ndcg@10"] for r in rows], marker="o", label=label
            )
    axes.set_xlabel("candidates reranked (0 = first stage alone)")
    axes.set_ylabel("nDCG@10")
    axes.set_title(f"{report['dataset']} on {report['engine']}, reranker {report['model']}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{report['dataset']}-{report['engine']}"
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    json_path.write_text(json.dumps(report, indent=2))
    plot(report, png_path)
    return json_path, png_path
