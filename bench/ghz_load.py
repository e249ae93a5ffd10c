"""A ghz load run against `rerank-bridge serve`, through the published descriptor
set (proto/rerank_bridge/proto/v1/rerank.protoset), as an operator would run it.

    .venv/bin/python bench/ghz_load.py    # MiniLM, 20 passages a request, 200 calls, 8 at a time
    .venv/bin/python bench/ghz_load.py --model fake --total 2000 --concurrency 32

ghz comes from `bash tools/install.sh` (.tools/bin/ghz). Prints ghz's JSON
summary (its per-call details left out), with the request's shape.
"""

from __future__ import annotations

import argparse
import json
import subprocess

from rerank_bridge.devtools import checkout
from rerank_bridge.server.config import BUILTIN_MINILM
from workload import passages, progress, start_server

PROTOSET = checkout.package_folder("rerank_bridge.proto.v1") / "rerank.protoset"
GHZ = checkout.root() / ".tools" / "bin" / "ghz"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=BUILTIN_MINILM)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--total", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    request = {
        "query": "which proteins fold in the cell",
        "documents": [{"id": str(i), "text": t} for i, t in enumerate(passages(args.documents, args.words))],
    }
    server, address = start_server(args.model, ["--embed-model", "none"])
    try:
        progress(f"ghz: {args.total} calls, {args.concurrency} at a time, against {address}")
        command = [
            str(GHZ),
            "--insecure",
            "--protoset",
            str(PROTOSET),
            "--call",
            "rerank.v1.Reranker/Rerank",
            "--data",
            json.dumps(request),
            "--total",
            str(args.total),
            "--concurrency",
            str(args.concurrency),
            "--timeout",
            "120s",
            "--format",
            "json",
            address,
        ]
        report = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    finally:
        server.terminate()
        server.wait()
    report.pop("details", None)
    summary = {
        "benchmark": "ghz_load",
        "model": args.model,
        "documents_per_request": args.documents,
        "words_per_document": args.words,
        "ghz": report,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
