"""Choosing a blend of reranker and first stage on the user's own judgments,
and saying honestly what it is worth.

The weight and normaliser are chosen by k-fold cross-validation: each fold's
queries are ranked by the setting that did best on the other folds, so every
query's nDCG@10 is held out, never one the choice was tuned on. Beside it: a
95 % bootstrap interval per mean, and a paired randomisation test (sign
flips of the per-query differences) against the first stage and against
reranking alone. The gate (`Gate`): by default a blend is recommended only where
its held-out gain over the first stage is significant and pays for what reranking
costs each search; `any-gain` recommends any held-out gain, however small or slow.

The setting recommended for the bridge is the one best on all the queries
(cross-validation measures the procedure; the final choice uses every query).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import ir_measures
import numpy as np
from ir_measures import nDCG

from rerank_bridge.evaluation.arguments import GATE_RULES
from rerank_bridge.evaluation.measures import Qrels, ranked_run
from rerank_bridge.evaluation.records import RERANKED, QueryRecord
from rerank_bridge.search.blending import NORMALIZERS, BlendSettings

BOOTSTRAP_SAMPLES = 2000
PERMUTATIONS = 10_000
SIGNIFICANCE = 0.05
# None is the first stage alone; it comes first so that a tie keeps it (the cautious choice).
GRID: list[BlendSettings | None] = [
    None,
    RERANKED,
    *(
        BlendSettings(weight=tenths / 10, normalizer=normalizer)
        for normalizer in NORMALIZERS
        for tenths in range(1, 10)
    ),
]


def per_query_ndcg(
    qrels: Qrels, records: list[QueryRecord], depth: int, setting: BlendSettings | None
) -> Any:
    """nDCG@10 of each record's query (0 where nothing relevant was found), in record order."""
    run = ranked_run({r.query_id: r.ranking(depth, setting) for r in records})
    values = {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 10], qrels, run)}
    return np.array([float(values.get(r.query_id, 0.0)) for r in records])


def bootstrap_interval(values: Any, seed: int = 0) -> list[float]:
    """The 95 % percentile bootstrap interval of the mean, resampling queries."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(values), size=(BOOTSTRAP_SAMPLES, len(values)))
    means = values[samples].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def paired_p_value(a: Any, b: Any, seed: int = 0) -> float:
    """Two-sided paired randomisation test of mean(a - b) = 0: each query's
    difference keeps or flips its sign at random."""
    differences = a - b
    observed = abs(differences.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(PERMUTATIONS, len(differences)))
    flipped = np.abs((signs * differences).mean(axis=1))
    # The observed assignment is one of the permutations (+1 over +1): p is never 0.
    return float((np.count_nonzero(flipped >= observed - 1e-12) + 1) / (PERMUTATIONS + 1))


def fold_of(count: int, folds: int, seed: int = 0) -> Any:
    """Each query's fold, balanced and shuffled with a fixed seed."""
    assignment = np.arange(count) % folds
    np.random.default_rng(seed).shuffle(assignment)
    return assignment


def describe(setting: BlendSettings | None) -> dict[str, Any]:
    """A setting as the report writes it; `setting_of` reads it back."""
    if setting is None:
        return {"rerank": False}
    return {"rerank": True, **setting.describe()}


def setting_of(described: dict[str, Any]) -> BlendSettings | None:
    if not described["rerank"]:
        return None
    return BlendSettings(**{k: v for k, v in described.items() if k != "rerank"})


def setting_name(described: dict[str, Any]) -> str:
    """A setting in a few words, for tables."""
    setting = setting_of(described)
    if setting is None:
        return "first stage alone"
    return "reranker alone" if setting.weight == 1 else f"{setting.normalizer} w={setting.weight}"


@dataclass(frozen=True)
class Gate:
    """When a held-out gain is worth reranking for. `significant` (the default) asks
    for p < `significance` against the first stage and, where the rerank's median
    latency is known, a gain of at least `gain_per_second` nDCG@10 per second it adds
    to every search (0.02: half a second must buy +0.01). docs/evaluation.md says why."""

    rule: str = "significant"
    significance: float = SIGNIFICANCE
    gain_per_second: float = 0.02

    def __post_init__(self) -> None:
        if self.rule not in GATE_RULES:
            raise ValueError(f"gate rule must be one of {', '.join(GATE_RULES)}, got {self.rule!r}")

    def refusal(self, gain: float, p_value: float, queries: int, cost_ms: float | None) -> str | None:
        """Why a positive held-out gain does not earn reranking; None where it does."""
        if self.rule == "any-gain":
            return None
        if p_value >= self.significance:
            return (
                f"+{gain:.4f} nDCG@10 held out is not significant (p = {p_value:.3g} on {queries} "
                f"queries; the gate asks p < {self.significance})"
            )
        if cost_ms is not None and gain < (needed := self.gain_per_second * cost_ms / 1000):
            return (
                f"+{gain:.4f} nDCG@10 held out does not pay for {cost_ms:.0f} ms a search "
                f"(the gate asks +{needed:.4f}: {self.gain_per_second} per second)"
            )
        return None


DEFAULT_GATE = Gate()


@dataclass
class Summary:
    mean: float
    interval: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"ndcg@10": round(self.mean, 4), "ci95": self.interval}


def _summary(values: Any) -> Summary:
    return Summary(float(values.mean()), bootstrap_interval(values))


def tune(
    qrels: Qrels,
    records: list[QueryRecord],
    depth: int,
    folds: int,
    gate: Gate = DEFAULT_GATE,
    cost_ms: float | None = None,
) -> dict[str, Any]:
    """The cross-validated choice for one stage's records, at one depth. `cost_ms`: the
    rerank's median latency at that depth, where it was measured."""
    if len(records) < folds:
        raise SystemExit(f"--folds {folds} needs at least {folds} queries; there are {len(records)}")
    table = np.stack([per_query_ndcg(qrels, records, depth, setting) for setting in GRID])
    first, reranked = table[0], table[1]
    assignment = fold_of(len(records), folds)
    held_out = np.zeros(len(records))
    chosen = []
    for fold in range(folds):
        training, testing = assignment != fold, assignment == fold
        best = int(np.argmax(table[:, training].mean(axis=1)))  # the first of equals: cautious
        held_out[testing] = table[best, testing]
        chosen.append(describe(GRID[best]))
    recommended = GRID[int(np.argmax(table.mean(axis=1)))]
    gain = float(held_out.mean() - first.mean())
    p_first, p_reranked = paired_p_value(held_out, first), paired_p_value(held_out, reranked)
    if gain <= 0:
        verdict = (
            "do not rerank this index: no blend beat the first stage on held-out queries "
            f"({held_out.mean():.4f} against {first.mean():.4f})"
        )
        recommended = None
    elif recommended is None:
        verdict = "do not rerank this index: on all the queries together the first stage did best"
    elif (refusal := gate.refusal(gain, p_first, len(records), cost_ms)) is not None:
        verdict = f"do not rerank this index: {refusal}"
        recommended = None
    elif p_first < SIGNIFICANCE:
        verdict = f"rerank with the blend: +{gain:.4f} nDCG@10 held out (p = {p_first:.3g})"
    else:
        verdict = (
            f"rerank with the blend: +{gain:.4f} nDCG@10 held out, not significant "
            f"(p = {p_first:.3g}) on {len(records)} queries"
        )
    return {
        "depth": depth,
        "queries": len(records),
        "folds": folds,
        "first_stage": _summary(first).to_json(),
        "reranked": _summary(reranked).to_json(),
        "blended_held_out": _summary(held_out).to_json(),
        "gain_over_first_stage": round(gain, 4),
        "gain_over_reranked": round(float(held_out.mean() - reranked.mean()), 4),
        "p_value_vs_first_stage": round(p_first, 4),
        "p_value_vs_reranked": round(p_reranked, 4),
        "chosen_per_fold": chosen,
        "recommended": describe(recommended),
        "rerank": recommended is not None,
        "verdict": verdict,
        "gate": {**asdict(gate), "rerank_ms_p50": cost_ms},
    }


def bridge_snippet(pattern: str, fields: list[str], stage: str, tuned: dict[str, Any]) -> str:
    """A piece of the bridge's configuration (its `indices` section) that applies the
    recommendation; for "do not rerank", an empty section, so searches pass through."""
    import yaml

    lines = [
        f"# rerank-bridge eval --tune: {stage} first stage, {tuned['queries']} queries, "
        f"{tuned['folds']}-fold cross-validation",
        f"# {tuned['verdict']}",
        f"# first stage {tuned['first_stage']['ndcg@10']}, reranked {tuned['reranked']['ndcg@10']}, "
        f"blended (held out) {tuned['blended_held_out']['ndcg@10']} nDCG@10",
    ]
    if not tuned["rerank"]:
        return "\n".join([*lines, "indices: {}", ""])
    settings: dict[str, Any] = {"fields": fields, "rank_window_size": tuned["depth"]}
    recommended = setting_of(tuned["recommended"])
    if recommended is not None and recommended.weight < 1:
        settings["blend"] = recommended.describe()
    return "\n".join(lines) + "\n" + str(yaml.safe_dump({"indices": {pattern: settings}}, sort_keys=False))
