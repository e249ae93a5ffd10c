"""The evaluation's outputs: a terminal table, a JSON file, a PNG plot of
nDCG@10 against the number of candidates reranked (one line per first stage),
and with --tune a table of the cross-validated blends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rerank_bridge.evaluation.tuning import setting_name


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
        timed = row.get("rerank_ms_p50")
        rerank_ms = f"{timed:>10.1f}" if timed is not None else f"{'':>10}"
        flags = " ".join(f"[{row[key]}]" for key in ("latency_note", "note") if key in row)
        read_as = row.get("long_documents", "head") if row["rerank_depth"] else ""
        lines.append(
            f"{row['stage']:<12} {depth:>9} {read_as:>7} {row['ndcg@10']:>8.4f} {row['mrr@10']:>8.4f} "
            f"{row[recall]:>11.4f} {row['first_stage_ms_p50']:>9.1f} {rerank_ms} {flags}".rstrip()
        )
    return "\n".join(lines)


def _mean_and_interval(summary: dict[str, Any]) -> str:
    low, high = summary["ci95"]
    return f"{summary['ndcg@10']:.4f} [{low:.3f}, {high:.3f}]"


def tuning_table(report: dict[str, Any]) -> str:
    """Per stage: nDCG@10 (95 % interval) of the first stage, of reranking alone and
    of the blend held out, the recommended setting and the verdict."""
    tuned = report["tuning"]
    lines = [
        f"blends tuned by {next(iter(tuned.values()))['folds']}-fold cross-validation "
        f"(nDCG@10 [95% interval]; the blend's is held out)"
    ]
    for stage, result in tuned.items():
        p_first, p_reranked = result["p_value_vs_first_stage"], result["p_value_vs_reranked"]
        lines.append(
            f"{stage:<8} first stage {_mean_and_interval(result['first_stage'])}  "
            f"reranked {_mean_and_interval(result['reranked'])}  "
            f"blended {_mean_and_interval(result['blended_held_out'])}  "
            f"p vs first {p_first:.3g}, vs reranked {p_reranked:.3g}"
        )
        lines.append(f"{'':<8} recommended: {setting_name(result['recommended'])}. {result['verdict']}")
    return "\n".join(lines)


def slug(dataset: str) -> str:
    """A collection's whole name as one file-name slug."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", dataset).strip("-")


def stem(report: dict[str, Any]) -> str:
    """The files' name: the collection's slug and the engine."""
    return f"{slug(report['dataset'])}-{report['engine']}"


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


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """The JSON, and the plot where there are rows to plot (a re-tune has none)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / f"{stem(report)}.json", out / f"{stem(report)}.png"
    json_path.write_text(json.dumps(report, indent=2))
    if not report["results"]:
        return [json_path]
    plot(report, png_path)
    return [json_path, png_path]
