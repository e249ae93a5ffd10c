"""The arguments of `rerank-bridge wire`, importable without the connectors extra
(the command's parser is built before any subcommand runs)."""

from __future__ import annotations

import argparse

ENGINES = ("elasticsearch", "opensearch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", choices=ENGINES, help="the kind of cluster to wire")
    parser.add_argument("--engine-url", required=True, help="the cluster's URL")
    parser.add_argument(
        "--bridge-url",
        required=True,
        help="rerank-bridge's URL as the cluster reaches it, e.g. http://rerank-bridge:8080",
    )
    parser.add_argument(
        "--api-key-env",
        default="RERANK_BRIDGE_API_KEY",
        help="environment variable holding the key the cluster presents to the bridge (unset: none)",
    )
    parser.add_argument(
        "--model", default="", help="the model name to ask the bridge for (default: none sent)"
    )
    parser.add_argument(
        "--name", default="rerank-bridge", help="name of the connector, model, pipeline or endpoint"
    )
    parser.add_argument(
        "--fields",
        default="text",
        help="OpenSearch: comma-separated document fields the rerank processor sends",
    )
    parser.add_argument(
        "--hybrid",
        choices=("none", "normalization", "rrf"),
        default="none",
        help="OpenSearch: add a phase processor for `hybrid` queries to the pipeline",
    )
    parser.add_argument(
        "--keyword-weight", type=float, default=0.5, help="normalization: the first sub-query's weight"
    )
    parser.add_argument("--rank-constant", type=int, default=60, help="rrf: the rank constant")
    parser.add_argument(
        "--no-rerank",
        action="store_true",
        help="OpenSearch: only the hybrid processor, no connector or model",
    )
    parser.add_argument(
        "--ignore-failure",
        action="store_true",
        help="OpenSearch: a failed rerank keeps the first-stage order",
    )
    parser.add_argument(
        "--apply-settings",
        action="store_true",
        help="OpenSearch: set the ml-commons cluster settings the connector needs instead of naming them",
    )
    parser.add_argument("--engine-user", default="", help="basic-auth user for the cluster")
    parser.add_argument(
        "--engine-password-env",
        default="RERANK_ENGINE_PASSWORD",
        help="environment variable holding its password",
    )
    parser.add_argument("--engine-ca-certs", default="", help="CA bundle for an https cluster")
