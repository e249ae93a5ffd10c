"""`rerank-bridge export`: a cross-encoder or bi-encoder written as an exported ONNX
folder (backends/onnx_bundle.py), which `rerank-bridge serve` runs without torch.

    rerank-bridge export --model builtin:multilingual-e5-small --dtype int8 --out /models/e5-int8

The flags come from here without importing anything heavy; torch, transformers
and ONNX's exporter are imported when it runs (the [server,onnx] extras).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rerank_bridge.server.config import DEFAULT_MODEL, ServerConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"the model folder to export (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--kind", default="auto", choices=["auto", "cross-encoder", "bi-encoder"], help="as serve's --kind"
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "int8"],
        help="precision of the graph (int8: ONNX Runtime's dynamic quantisation, per channel)",
    )
    parser.add_argument("--model-name", default="", help="name it is served under (default: the folder's)")
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder to write")


def export(
    model: str, out: Path, kind: str = "auto", dtype: str = "float32", model_name: str = ""
) -> dict[str, Any]:
    """The model (a folder or builtin:NAME) exported to `out`; the folder's manifest."""
    from rerank_bridge.server.backends import onnx_bundle
    from rerank_bridge.server.backends.registry import load_backend

    config = ServerConfig(model=model, kind=kind, runtime="onnx", dtype=dtype, model_name=model_name)
    return onnx_bundle.write(load_backend(config), out)


def run(args: argparse.Namespace) -> None:
    manifest = export(args.model, args.out, args.kind, args.dtype, args.model_name)
    print(json.dumps({"exported": str(args.out), **manifest}, indent=2), file=sys.stdout)
