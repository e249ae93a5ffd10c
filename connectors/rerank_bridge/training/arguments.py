"""The arguments of `rerank-bridge train`, importable without the train extra (the
command's parser is built before any subcommand runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rerank_bridge.evaluation.arguments import STAGES, non_negative_float, positive
from rerank_bridge.server.config import DEFAULT_MODEL

KINDS = ("cross-encoder", "bi-encoder", "listwise")
# The kinds the torch-free server runs; a listwise model is served with torch.
EXPORTS_TO_ONNX = ("cross-encoder", "bi-encoder")
RANKING_LOSSES = ("bce", "listnet", "lambdaloss")


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def temperature(text: str) -> float:
    """A softmax temperature: a finite number above 0 (the loss divides by it)."""
    value = non_negative_float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0 and finite, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        required=True,
        help="BEIR-layout folder: its corpus is indexed; its queries_train/qrels_train are trained on "
        "and its test queries held out (else a share of its judged queries is held out); repeat it "
        "to train on several collections at once",
    )
    parser.add_argument(
        "--evaluate",
        type=Path,
        action="append",
        default=[],
        help="BEIR-layout folder never trained on, whose judged queries the report judges on instead "
        "of the --data folders' held-out ones (repeatable): transfer to another collection or language",
    )
    parser.add_argument(
        "--judgments",
        type=Path,
        help="a judgment list to train on instead (RankLib 'GRADE qid:Q # DOC' lines, as Elasticsearch's "
        "Learning to Rank keeps them, or QUERY<TAB>DOC<TAB>GRADE), over the folder's queries",
    )
    parser.add_argument(
        "--held-out",
        type=fraction,
        default=0.2,
        help="share of judged queries held out when a folder has no training split (default 0.2; 0 "
        "trains on them all, where --evaluate gives the queries to judge on)",
    )
    parser.add_argument("--engine-url", required=True, help="a running Elasticsearch or OpenSearch node")
    parser.add_argument(
        "--base", default=DEFAULT_MODEL, help=f"the model to start from (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="cross-encoder",
        help="train a cross-encoder (a ranking head on the base encoder), or fine-tune a bi-encoder "
        "or a listwise model (the base must be of that kind)",
    )
    parser.add_argument(
        "--embed-model",
        default="auto",
        help="the model behind the index's vectors (kNN and hybrid): auto is the base model where it "
        "embeds, as eval's is",
    )
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the model and the report")
    parser.add_argument("--stage", choices=STAGES, default="bm25", help="the first stage negatives come from")
    parser.add_argument("--depth", type=positive, default=50, help="the window reranked, and mined")
    parser.add_argument("--negatives", type=positive, default=8, help="mined negatives kept per query")
    parser.add_argument(
        "--loss", choices=RANKING_LOSSES, default="listnet", help="the cross-encoder's ranking loss"
    )
    parser.add_argument(
        "--no-distill",
        dest="distill",
        action="store_false",
        help="train the cross-encoder on the judgments alone, without the base model's scores",
    )
    parser.add_argument("--epochs", type=non_negative_float, default=1.0)
    parser.add_argument("--batch-size", type=positive, default=16)
    parser.add_argument("--learning-rate", type=non_negative_float, default=2e-5)
    parser.add_argument(
        "--temperature",
        type=temperature,
        default=0.01,
        help="the bi-encoder's contrastive temperature: its loss is a softmax over cosines divided by "
        "it (default 0.01, multilingual-e5's own; all-MiniLM-L6-v2 was trained at 0.05)",
    )
    parser.add_argument("--max-length", type=positive, default=256, help="tokens per training sequence")
    parser.add_argument("--max-minutes", type=non_negative_float, help="stop training after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-steps", type=positive, default=200, help="a checkpoint every this many steps")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint (without it --out must not exist)",
    )
    parser.add_argument(
        "--no-onnx",
        dest="onnx",
        action="store_false",
        help="skip the ONNX export for the torch-free image (a listwise model has none)",
    )
    parser.add_argument(
        "--no-report", dest="report", action="store_false", help="skip the held-out evaluation at the end"
    )
    parser.add_argument(
        "--report-queries",
        type=positive,
        help="judge each collection on a seeded sample of this many queries (the report's cost)",
    )
