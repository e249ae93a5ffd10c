"""Where a scoring server's time goes: py-spy samples `rerank-bridge serve` (or
the in-process peer) under the throughput benchmark's requests, and each sample
is put in one bucket by the code it was in.

    .venv/bin/python bench/profile_server.py                       # MiniLM, torch
    .venv/bin/python bench/profile_server.py --serve-args="--runtime onnx --dtype int8"
    .venv/bin/python bench/profile_server.py --model tiny-listwise-qwen3 --concurrency 4

Prints JSON: per bucket, the share of the samples of threads doing work (py-spy
leaves idle threads out), and the hottest leaf frames. `--inprocess` profiles
sentence-transformers' encode on the same requests instead, for the peer's
side of the comparison.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from server_throughput import level_batch, model_folder
from workload import grpc_caller, load, progress, rerank_requests, start_server

# First rule that matches a sample's stack (outermost frame first) names its bucket.
BUCKETS = (
    ("padding", ("pad_batch", "tokenization_utils_base.py:pad")),
    ("model: onnxruntime", ("onnxruntime",)),
    ("model: torch", ("torch/nn/modules", "sentence_transformers/models", "modeling_")),
    ("tokenising", ("truncation.py", "tokenizers", "tokenization_utils")),
    ("prompt and plan", ("listwise_prompt.py", "chunking.py", "plan_rerank", "plan_embed")),
    ("results", ("finish", "wire.py", "cosine_similarity")),
    ("validation", ("validation.py",)),
    ("scheduler", ("scheduler.py",)),
    ("grpc and asyncio", ("grpc", "asyncio", "selectors")),
)


# Leaf frames where a thread only waits (py-spy cannot always tell them idle):
# the event loop's select, a pool worker's queue, joins. Left out of the shares.
WAITING = (
    "select (selectors.py",
    "Condition.wait",
    "_wait_for_tstate_lock",
    "Thread.run (threading.py",
    "_worker (concurrent/futures/thread.py",
)


def bucket(stack: str) -> str:
    if any(needle in stack.rsplit(";", 1)[-1] for needle in WAITING):
        return "waiting"
    for name, needles in BUCKETS:
        if any(needle in stack for needle in needles):
            return name
    return "other"


def summarise_samples(raw: Path) -> dict[str, Any]:
    """Reads py-spy's collapsed stacks ("frame;frame;... count" per line)."""
    buckets: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        buckets[bucket(stack)] += count
        leaves[stack.rsplit(";", 1)[-1]] += count
    waiting = buckets.pop("waiting", 0)
    for leaf in [leaf for leaf in leaves if any(needle in leaf for needle in WAITING)]:
        del leaves[leaf]
    total = sum(buckets.values())
    return {
        "samples": total,
        "waiting_samples": waiting,
        "share": {name: round(n / total, 3) for name, n in buckets.most_common()},
        "hottest_leaves": [{"frame": f, "share": round(n / total, 3)} for f, n in leaves.most_common(12)],
    }


def record(pid: int, out: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "100",
        "--threads",
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(2)  # py-spy writes its file on SIGINT
    spy.wait(timeout=60)


def profile_server(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    model, flags = model_folder(args.model, scratch)
    process, address = start_server(model, [*flags, *args.serve_args.split()])
    requests = rerank_requests(max(args.requests, args.concurrency), args.documents, args.words)
    try:
        load(grpc_caller(address), requests[:2], 1)  # warm-up
        raw = scratch / "server.txt"
        spy = record(process.pid, raw)
        progress(f"{args.model}: {len(requests)} requests at concurrency {args.concurrency}")
        level = load(grpc_caller(address), level_batch(requests, args.concurrency, args), args.concurrency)
        stop(spy)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"level": level, **summarise_samples(raw)}


def profile_inprocess(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """The peer: sentence-transformers' encode, profiled from a thread of this process."""
    from sentence_transformers import SentenceTransformer

    from rerank_bridge.server.backends.registry import builtin_minilm_folder

    model = SentenceTransformer(str(builtin_minilm_folder()), device="cpu")
    requests = rerank_requests(args.requests, args.documents, args.words)
    raw = scratch / "inprocess.txt"
    done = threading.Event()

    def work() -> None:
        for request in requests:
            vectors = model.encode(
                [request.query] + [d.text for d in request.documents], convert_to_tensor=True
            )
            _ = (vectors[1:] @ vectors[0]).tolist()
        done.set()

    import os

    spy = record(os.getpid(), raw)
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    stop(spy)
    return summarise_samples(raw)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="minilm", help="minilm, tiny-listwise, tiny-listwise-qwen3 or a folder"
    )
    parser.add_argument("--serve-args", default="", help="extra `rerank-bridge serve` flags")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--inprocess", action="store_true", help="profile the in-process peer instead")
    args = parser.parse_args()
    args.rounds, args.min_requests = 1, args.requests
    with tempfile.TemporaryDirectory() as scratch:
        if args.inprocess:
            result = {"target": "inprocess sentence-transformers", **profile_inprocess(args, Path(scratch))}
        else:
            result = {
                "target": f"rerank-bridge serve {args.serve_args}".strip(),
                **profile_server(args, Path(scratch)),
            }
    print(json.dumps({"benchmark": "profile_server", "model": args.model, **result}, indent=2))


if __name__ == "__main__":
    main()
