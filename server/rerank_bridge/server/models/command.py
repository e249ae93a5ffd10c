"""`rerank-bridge models list | fetch NAME... | import-onnx`.

    rerank-bridge models fetch multilingual-e5-small     # or: all
    rerank-bridge serve --model builtin:multilingual-e5-small
    rerank-bridge models import-onnx --graph model.onnx --tokenizer tokenizer.json \\
        --pooling mean --query-prompt "query: " --document-prompt "passage: " --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rerank_bridge.server.config import BUILTIN_MINILM
from rerank_bridge.server.domain import Prompts
from rerank_bridge.server.models.catalog import BUILTIN_PREFIX, CATALOG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the catalogued models, and where each is fetched").set_defaults(
        act=list_models
    )
    fetch = actions.add_parser("fetch", help="download, check and convert models (idempotent)")
    fetch.add_argument("names", nargs="+", metavar="NAME", help=f"all, or any of: {', '.join(CATALOG)}")
    fetch.set_defaults(act=fetch_models)
    imported = actions.add_parser(
        "import-onnx", help="make an encoder exported to ONNX (last_hidden_state out) servable without torch"
    )
    imported.add_argument("--graph", type=Path, required=True, help="the .onnx file")
    imported.add_argument("--tokenizer", type=Path, required=True, help="its tokenizer.json")
    imported.add_argument(
        "--pooling", required=True, choices=["cls", "mean"], help="as the model was trained"
    )
    imported.add_argument(
        "--no-normalize", action="store_true", help="keep the pooled vector's length (default: L2-normalise)"
    )
    imported.add_argument("--query-prompt", default="", help="text put before every query")
    imported.add_argument("--document-prompt", default="", help="text put before every document")
    imported.add_argument(
        "--max-length", type=int, default=512, help="tokens per sequence, special ones included"
    )
    imported.add_argument("--precision", default="float32", choices=["float32", "int8"], help="the graph's")
    imported.add_argument("--model-name", default="", help="name it is served under (default: the graph's)")
    imported.add_argument("--out", type=Path, required=True, help="a new or empty folder to write")
    imported.set_defaults(act=import_onnx)


def list_models(args: argparse.Namespace) -> None:
    from rerank_bridge.server.models.fetching import fetched_folder

    for name, model in CATALOG.items():
        folder = fetched_folder(name)
        where = str(folder) if folder else "not fetched"
        print(f"{name}\t{model.licence}\t{model.summary}\t{where}")


def fetch_models(args: argparse.Namespace) -> None:
    from rerank_bridge.server.backends.registry import builtin_minilm_folder
    from rerank_bridge.server.errors import MissingDependency
    from rerank_bridge.server.models.fetching import FetchError, fetch

    names = list(CATALOG) if args.names == ["all"] else args.names
    for name in names:
        try:
            # The packaged MiniLM is a pip package ([minilm]): nothing to fetch.
            folder = builtin_minilm_folder() if f"{BUILTIN_PREFIX}{name}" == BUILTIN_MINILM else fetch(name)
        except (FetchError, MissingDependency) as error:
            sys.exit(f"rerank-bridge models fetch: {error}")
        print(f"{BUILTIN_PREFIX}{name}\t{folder}", flush=True)


def import_onnx(args: argparse.Namespace) -> None:
    from rerank_bridge.server.models.onnx_import import import_encoder

    try:
        manifest = import_encoder(
            args.graph,
            args.tokenizer,
            args.out,
            model_id=args.model_name or args.graph.stem,
            pooling=args.pooling,
            normalize=not args.no_normalize,
            prompts=Prompts(query=args.query_prompt, document=args.document_prompt),
            max_length=args.max_length,
            precision=args.precision,
        )
    except (ValueError, OSError) as error:
        sys.exit(f"rerank-bridge models import-onnx: {error}")
    print(json.dumps({"imported": str(args.out), **manifest}, indent=2))


def run(args: argparse.Namespace) -> None:
    args.act(args)
