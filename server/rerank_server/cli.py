"""The `rerank-bridge` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rerank_server import config as server_config


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rerank-bridge", description="Listwise reranking for search engines"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC scoring server")
    server_config.add_arguments(serve, os.environ)
    proxy = commands.add_parser("proxy", help="run the HTTP bridge in front of an engine")
    proxy.add_argument("--config", type=Path, help="bridge configuration (YAML or JSON)")
    proxy.add_argument("--engine-url", help="engine URL (overrides the file)")
    proxy.add_argument("--reranker", help="scoring server address host:port (overrides the file)")
    proxy.add_argument("--host", help="address to listen on (overrides the file)")
    proxy.add_argument("--port", type=int, help="port to listen on (overrides the file)")
    evaluate = commands.add_parser("eval", help="measure first stages with and without reranking (BEIR data)")
    from rerank_connectors.evaluation.cli import add_arguments as add_eval_arguments

    add_eval_arguments(evaluate)
    args = parser.parse_args(argv)
    if args.command == "eval":
        from rerank_connectors.evaluation.cli import run as run_eval

        run_eval(args)
        return
    if args.command == "proxy":
        logging.basicConfig(
            level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        from rerank_connectors.bridge.app import run
        from rerank_connectors.bridge.config import load_config

        run(
            load_config(
                args.config,
                engine_url=args.engine_url,
                reranker=args.reranker,
                host=args.host,
                port=args.port,
            )
        )
        return
    if args.command == "serve":
        config = server_config.from_namespace(args)
        logging.basicConfig(
            level=config.log_level.upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # Imported here: the gRPC stack and the models are needed only to serve.
        from rerank_server.app import serve_forever

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_forever(config))


if __name__ == "__main__":
    main()
