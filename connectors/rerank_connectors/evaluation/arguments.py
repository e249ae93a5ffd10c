"""The arguments of `rerank-bridge eval`, importable without the eval extra
(the command's parser is built before any subcommand runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

STAGES = ("bm25", "knn", "hybrid")
ENGINES = ("elasticsearch", "opensearch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="BEIR-layout folder (corpus, queries, qrels)"
    )
    parser.add_argument("--engine", choices=ENGINES, default="elasticsearch")
    parser.add_argument("--engine-url", help="a running engine; without it a local node is started")
    parser.add_argument("--reranker", help="scoring server host:port; without it one is started with --model")
    parser.add_argument("--model", default="builtin:all-MiniLM-L6-v2", help="model for a server started here")
    parser.add_argument("--depths", default="10,20,50,100", help="candidate counts to rerank")
    parser.add_argument("--stages", default=",".join(STAGES), help="first stages: bm25, knn, hybrid")
    parser.add_argument("--max-queries", type=int, help="a seeded sample of the judged queries")
    parser.add_argument(
        "--latency-queries", type=int, default=20, help="queries whose rerank calls are timed"
    )
    parser.add_argument("--out", type=Path, default=Path("eval-results"), help="where the JSON and PNG go")
    parser.add_argument(
        "--chunking",
        metavar="SIZE[:OVERLAP]",
        help="also rerank with documents read as chunks of SIZE tokens (OVERLAP shared), beside their head",
    )
    parser.add_argument(
        "--max-document-tokens",
        type=int,
        help="the token cap a document's head is cut to (default: the server's)",
    )
