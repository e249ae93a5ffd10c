"""The arguments of `rerank-bridge eval`, importable without the eval extra
(the command's parser is built before any subcommand runs).

Each value is checked as it is parsed, so a typing mistake is one line from
argparse before any server starts or any document is indexed."""

from __future__ import annotations

import argparse
from pathlib import Path

from rerank_bridge.server.config import DEFAULT_MODEL

STAGES = ("bm25", "knn", "hybrid")
ENGINES = ("elasticsearch", "opensearch")


def depths(text: str) -> list[int]:
    """`10,20,50`: candidate counts, each a whole number of at least 1."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers separated by commas, like 10,20,50; got {text!r}"
        ) from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"each depth must be at least 1; got {text!r}")
    return values


def stages(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown first stages {', '.join(unknown) or '(none given)'}; known: {', '.join(STAGES)}"
        )
    return list(dict.fromkeys(chosen))


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def folds(text: str) -> int:
    value = positive(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"cross-validation needs at least 2 folds, got {value}")
    return value


# When --tune recommends reranking (evaluation/tuning.py, Gate).
GATE_RULES = ("significant", "any-gain")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="BEIR-layout folder (corpus, queries, qrels)"
    )
    parser.add_argument(
        "--name",
        help="the collection's name in results and file names (default: the --data path as given)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="checked against the node at --engine-url (default: what the node says it is)",
    )
    # The library never starts engines: a local node for trying this out comes from
    # the developer tools (`python tools/local_engines.py start elasticsearch`).
    parser.add_argument("--engine-url", help="a running engine (required except with --from-queries)")
    parser.add_argument("--reranker", help="scoring server host:port; without it one is started with --model")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model for a server started here")
    parser.add_argument(
        "--embed-model",
        default="auto",
        help="model behind a started server's Embed (the kNN vectors): auto is the reranker when it "
        "embeds; another model keeps reranking a kNN or hybrid window from being a no-op",
    )
    parser.add_argument("--depths", type=depths, default=[10, 20, 50, 100], help="candidate counts to rerank")
    parser.add_argument("--stages", type=stages, default=list(STAGES), help="first stages: bm25, knn, hybrid")
    parser.add_argument("--max-queries", type=positive, help="a seeded sample of the judged queries")
    parser.add_argument(
        "--latency-queries",
        type=int,
        default=20,
        help="queries whose rerank calls are timed (fewer than 10 calls are marked as too few)",
    )
    parser.add_argument("--out", type=Path, default=Path("eval-results"), help="where the results go")
    parser.add_argument(
        "--chunking",
        metavar="SIZE[:OVERLAP]",
        help="also rerank with documents read as chunks of SIZE tokens (OVERLAP shared), beside their head",
    )
    parser.add_argument(
        "--max-document-tokens",
        type=positive,
        help="the token cap a document's head is cut to (default: the server's)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="choose a blend of reranker and first stage per stage by k-fold cross-validation, "
        "report it held out, and write a bridge config snippet",
    )
    parser.add_argument("--folds", type=folds, default=5, help="cross-validation folds for --tune")
    parser.add_argument(
        "--gate",
        choices=GATE_RULES,
        default="significant",
        help="when --tune recommends reranking: significant (the held-out gain has p < 0.05 and "
        "pays for the rerank's latency, see --min-gain-per-second) or any-gain",
    )
    parser.add_argument(
        "--min-gain-per-second",
        type=non_negative_float,
        default=0.02,
        help="nDCG@10 the held-out gain must reach per second of median rerank latency "
        "(the significant gate; 0.02: half a second must buy +0.01)",
    )
    parser.add_argument(
        "--index-pattern",
        help="the index pattern the config snippet names (default: the evaluated index)",
    )
    parser.add_argument(
        "--from-queries",
        type=Path,
        metavar="JSONL",
        help="re-tune from the per-query file an earlier run wrote: no engine, no scoring server",
    )
