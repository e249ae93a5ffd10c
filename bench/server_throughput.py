"""Scoring-server throughput and latency over real gRPC on loopback, with peers
and the machine's roofline.

    .venv/bin/python bench/server_throughput.py          # MiniLM fp32, bf16, int8; concurrency 1, 4, 16, 64
    .venv/bin/python bench/server_throughput.py --models minilm --concurrency 1,4 --peers inprocess
    .venv/bin/python bench/server_throughput.py --models e5-fp32,e5-bf16,e5-onnx-int8 --concurrency 1,16

Two model families: `minilm` (the packaged all-MiniLM-L6-v2) and `e5` (the default,
multilingual-e5-small, as `rerank-bridge models fetch` built it); each as `FAMILY`
(the server's auto dtype), `-fp32`, `-bf16`, `-onnx` or `-onnx-int8`. Peers and the
roofline are computed for the family of the first model named, with its prompts
(the peers get the same prompted texts the server reads).

`bash tools/install_infinity.sh` installs the infinity peer where `--infinity`
looks by default; without it the JSON records the peer as not run.

Each model is served by `rerank-bridge serve` in its own process (client threads
do not share its interpreter); the same requests (50 documents of ~200 tokens)
go out at each concurrency. Peers, on the same model in the same run, each at
its best: `inprocess` calls the model directly (sentence-transformers encode +
cosine, one call at a time, fp32 and bf16: the server's own overhead is the
difference); `infinity` is infinity-emb's HTTP server (its own virtual
environment; it pins numpy<2 and transformers 4.x) asked for the same
embeddings: each of its CPU engines and dtypes is tried on a few requests and
the fastest serves every level. The roofline (bench/roofline.py): FLOPs per
request from MiniLM's shape and the request's token lengths, this machine's
matrix-multiply rate per precision, so each result's floor and the share of
the machine it reaches. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server.config import BUILTIN_MINILM, DEFAULT_MODEL
from roofline import Shape, machine, matmul_rates
from workload import Call, grpc_caller, load, progress, rerank_requests, start_server, summarise

T = TypeVar("T")

INFINITY = "/var/tmp/rerank-bridge/infinity-venv/bin/infinity_emb"  # where tools/install_infinity.sh puts it


@dataclass(frozen=True)
class Family:
    """A bi-encoder the server, the peers and the roofline all run."""

    spec: str  # what `serve --model` takes
    query_prompt: str = ""
    document_prompt: str = ""

    def folder(self) -> Path:
        from rerank_bridge.server.backends.registry import resolve_model

        return resolve_model(self.spec)

    def texts(self, request: pb.RerankRequest) -> list[str]:
        """What the model reads for a request: the query and the documents, prompted."""
        return [self.query_prompt + request.query] + [
            self.document_prompt + d.text for d in request.documents
        ]

    def shape(self) -> Shape:
        return Shape.of(json.loads((self.folder() / "config.json").read_text()))


FAMILIES = {
    "minilm": Family(BUILTIN_MINILM),
    "e5": Family(DEFAULT_MODEL, "query: ", "passage: "),
}
# Each family served by torch at each precision or by ONNX Runtime.
TORCH_VARIANTS = {"": [], "-fp32": ["--dtype", "float32"], "-bf16": ["--dtype", "bfloat16"]}
ONNX_VARIANTS = {"-onnx": "float32", "-onnx-int8": "int8"}


def family_of(name: str) -> tuple[str, str] | None:
    """(family, variant) of a model name such as `e5-onnx-int8`; None for anything else."""
    family, _, rest = name.partition("-")
    variant = f"-{rest}" if rest else ""
    if family in FAMILIES and (variant in TORCH_VARIANTS or variant in ONNX_VARIANTS):
        return family, variant
    return None


# infinity-emb's CPU settings (engine, dtype): each is tried, the fastest is the peer.
INFINITY_SETTINGS = [
    ("torch", "float32"),
    ("torch", "bfloat16"),
    ("torch", "int8"),
    ("optimum", "float32"),
    ("optimum", "int8"),
]


def model_folder(name: str, scratch: Path) -> tuple[str, list[str]]:
    if name in ("tiny-listwise", "tiny-listwise-qwen3"):
        from rerank_bridge.devtools.tiny_models import build_listwise

        vocabulary = "qwen3" if name.endswith("qwen3") else "trained"
        return str(build_listwise(scratch / name, vocabulary=vocabulary)), ["--embed-model", "none"]
    if (named := family_of(name)) is None:
        return name, ["--embed-model", "none"]
    family, variant = FAMILIES[named[0]], named[1]
    if variant in TORCH_VARIANTS:
        return family.spec, TORCH_VARIANTS[variant]
    # Linked into the scratch folder, so the export lands there, not beside the model.
    folder = scratch / name
    if not folder.exists():
        folder.mkdir()
        for entry in family.folder().iterdir():
            if entry.name != "onnx":
                (folder / entry.name).symlink_to(entry)
    return str(folder), ["--runtime", "onnx", "--dtype", ONNX_VARIANTS[variant]]


def serve_each(names: Sequence[str], measure: Callable[[str], T], extra: Sequence[str] = ()) -> dict[str, T]:
    """`measure(address)` against `rerank-bridge serve` on each model in turn, a process each."""
    results: dict[str, T] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            model, flags = model_folder(name, Path(scratch))
            process, address = start_server(model, [*flags, *extra])
            try:
                progress(name)
                results[name] = measure(address)
            finally:
                process.terminate()
                process.wait(timeout=60)
    return results


def tokens_per_request(address: str, request: pb.RerankRequest) -> int:
    with grpc.insecure_channel(address) as channel:
        return int(rerank_pb2_grpc.RerankerStub(channel).Rerank(request, timeout=600).usage.total_tokens)


def with_tokens(level: dict[str, Any], tokens: int) -> dict[str, Any]:
    return {**level, "tokens_per_s": round(level["requests_per_s"] * tokens, 1)}


def in_process_peer(
    family: Family, requests: list[pb.RerankRequest], count: int, dtype: str
) -> dict[str, Any]:
    """The model called directly, as an application without a server would."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(family.folder()), device="cpu")
    model.to(getattr(torch, dtype))
    model.encode(family.texts(requests[0]))  # warm-up
    latencies = []
    started = time.perf_counter()
    for request in requests[:count]:
        begin = time.perf_counter()
        vectors = model.encode(family.texts(request), convert_to_tensor=True)
        _ = (vectors[1:] @ vectors[0]).tolist()
        latencies.append(time.perf_counter() - begin)
    return {
        "dtype": dtype,
        "concurrency": 1,
        **summarise(latencies, time.perf_counter() - started, len(requests[0].documents)),
    }


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


def infinity_caller(family: Family, url: str, model_id: str) -> Callable[[], Call]:
    def make() -> Call:
        def call(request: pb.RerankRequest) -> None:
            body = json.dumps({"model": model_id, "input": family.texts(request)})
            http = urllib.request.Request(
                f"{url}/embeddings", data=body.encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(http, timeout=600) as response:
                data = [item["embedding"] for item in json.load(response)["data"]]
            scores = [cosine(data[0], vector) for vector in data[1:]]
            assert len(scores) == len(request.documents)

        return call

    return make


def start_infinity(
    binary: str, folder: Path, engine: str, dtype: str
) -> tuple[subprocess.Popen[bytes], str, str]:
    from rerank_bridge.devtools.local_engines import free_port

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [
        binary,
        "v2",
        "--model-id",
        str(folder),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--device",
        "cpu",
        "--engine",
        engine,
        "--dtype",
        dtype,
    ]
    # Its log goes to a file, so a setting that fails says why in the JSON (the
    # process keeps its own handle to the file after this one closes).
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
                    return process, url, json.load(response)["data"][0]["id"]
            except OSError:
                if process.poll() is not None:
                    log.seek(0)
                    lines = log.read().decode(errors="replace").splitlines()
                    errors = [line for line in lines if "Error" in line]
                    raise RuntimeError(f"infinity_emb exited while starting: {errors[-1:]}") from None
                time.sleep(1)
    process.kill()
    raise RuntimeError("infinity_emb did not start in 300 s")


def level_batch(
    requests: list[pb.RerankRequest], concurrency: int, args: argparse.Namespace
) -> list[pb.RerankRequest]:
    """The requests sent at one concurrency level: `rounds` per client, at least `min_requests`."""
    return requests[: max(concurrency * args.rounds, args.min_requests)]


def infinity_levels(
    args: argparse.Namespace,
    family: Family,
    setting: tuple[str, str],
    levels: list[int],
    requests: list[pb.RerankRequest],
) -> list[dict[str, Any]]:
    """infinity-emb's HTTP server on the same model at one (engine, dtype), at the given
    concurrency levels, each sending level_batch(requests)."""
    infinity, url, model_id = start_infinity(args.infinity, family.folder(), *setting)
    try:
        load(infinity_caller(family, url, model_id), requests[:2], 1)  # warm-up
        runs = []
        for concurrency in levels:
            batch = level_batch(requests, concurrency, args)
            progress(f"peer infinity {setting}: {len(batch)} requests at concurrency {concurrency}")
            runs.append(load(infinity_caller(family, url, model_id), batch, concurrency))
        return runs
    finally:
        infinity.terminate()
        infinity.wait(timeout=60)


def best_infinity(
    args: argparse.Namespace, family: Family, requests: list[pb.RerankRequest], tokens: int
) -> dict[str, Any]:
    """Each CPU setting tried at concurrency 4; the fastest then runs every level."""
    probes = []
    for engine, dtype in INFINITY_SETTINGS:
        try:
            (probe,) = infinity_levels(args, family, (engine, dtype), [4], requests)
            probes.append({"engine": engine, "dtype": dtype, "requests_per_s": probe["requests_per_s"]})
        except RuntimeError as error:  # a setting this CPU or install cannot run
            probes.append({"engine": engine, "dtype": dtype, "failed": str(error)})
    ran = [p for p in probes if "requests_per_s" in p]
    if not ran:
        return {"not_run": "no infinity setting started", "probes": probes}
    fastest = max(ran, key=lambda p: p["requests_per_s"])
    setting = (fastest["engine"], fastest["dtype"])
    levels = infinity_levels(args, family, setting, args.concurrency, requests)
    return {
        "engine": setting[0],
        "dtype": setting[1],
        "probes_at_concurrency_4": probes,
        "levels": [with_tokens(level, tokens) for level in levels],
    }


def bench_model(name: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    model, extra = model_folder(name, scratch)
    process, address = start_server(model, extra)
    requests = all_requests(args)
    try:
        with grpc.insecure_channel(address) as channel:
            info = rerank_pb2_grpc.RerankerStub(channel).GetModelInfo(pb.GetModelInfoRequest())
        tokens = tokens_per_request(address, requests[0])  # also the warm-up at full size
        levels = []
        for concurrency in args.concurrency:
            batch = level_batch(requests, concurrency, args)
            progress(f"{name}: {len(batch)} requests at concurrency {concurrency}")
            levels.append(with_tokens(load(grpc_caller(address), batch, concurrency), tokens))
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {
        "model": name,
        "kind": info.kind,
        "runtime": info.runtime,
        "device": info.device,
        "dtype": info.dtype,
        "tokens_per_request": tokens,
        "context_length": info.limits.context_length,
        "levels": levels,
    }


def all_requests(args: argparse.Namespace) -> list[pb.RerankRequest]:
    """The same seeded requests for every server and peer."""
    count = max(max(args.concurrency) * args.rounds, args.min_requests)
    return rerank_requests(count, args.documents, args.words)


def bench_peers(args: argparse.Namespace, family: Family, tokens: int) -> dict[str, Any]:
    """The family's peers, on the requests every server of it got."""
    requests = all_requests(args)
    peers: dict[str, Any] = {}
    if "inprocess" in args.peers:
        runs = []
        for dtype in ("float32", "bfloat16"):
            progress(f"peer: in-process model calls in {dtype}")
            runs.append(with_tokens(in_process_peer(family, requests, args.min_requests, dtype), tokens))
        peers["inprocess"] = min(runs, key=lambda run: run["p50_ms"])
        peers["inprocess_each_dtype"] = runs
    if "infinity" in args.peers:
        if shutil.which(args.infinity) is None:
            peers["infinity"] = {"not_run": f"{args.infinity} not found (bash tools/install_infinity.sh)"}
        else:
            peers["infinity"] = best_infinity(args, family, requests, tokens)
    return peers


def compare(result: dict[str, Any], peers: dict[str, Any]) -> None:
    """This server's ratios to the peers (each at its best), level by level
    (requests/s; p50 for in-process)."""
    if "inprocess" in peers:
        result["server_overhead_ratio_p50_c1"] = round(
            result["levels"][0]["p50_ms"] / peers["inprocess"]["p50_ms"], 3
        )
    if "levels" in peers.get("infinity", {}):
        result["throughput_ratio_vs_infinity"] = {
            str(ours["concurrency"]): round(ours["requests_per_s"] / theirs["requests_per_s"], 3)
            for ours, theirs in zip(result["levels"], peers["infinity"]["levels"], strict=True)
        }


def request_flops(family: Family, request: pb.RerankRequest, cap: int) -> float:
    """FLOPs of one request through the model: the query and each document as the
    server runs them (each its own sequence, prompted, cut at `cap`, the length the
    server reports for the model)."""
    from transformers import AutoTokenizer

    folder, shape = family.folder(), family.shape()
    encoded = AutoTokenizer.from_pretrained(str(folder))(family.texts(request))["input_ids"]
    return sum(shape.sequence_flops(min(len(ids), cap)) for ids in encoded)


def roofline(family: Family, results: list[dict[str, Any]], flops: float) -> dict[str, Any]:
    """Each result's floor at its precision and the share of it reached, at
    concurrency 1 (latency) and at its best level (throughput)."""
    progress("roofline: matrix-multiply rates")
    # At a request's token count: the feed-forward's shapes as one request fills them.
    rates = matmul_rates(family.shape(), 11600, ["float32", "bfloat16", "int8"])
    for result in results:
        rate = rates[result["dtype"]] * 1e9
        floor_ms = flops / rate * 1e3
        first = result["levels"][0]
        best = max(level["requests_per_s"] for level in result["levels"])
        result["roofline"] = {
            "floor_ms": round(floor_ms, 1),
            f"p50_over_floor_c{first['concurrency']}": round(first["p50_ms"] / floor_ms, 2),
            "share_of_rate_best_level": round(best * flops / rate, 3),
        }
    return {"flops_per_request": round(flops), "matmul_gflops": rates, "machine": machine()}


def goals(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals: >= 3x infinity's best at every level, <= 2.5x the floor at c=1."""
    ratios = result.get("throughput_ratio_vs_infinity", {})
    over_floor = result["roofline"].get("p50_over_floor_c1")
    return {
        "min_ratio_vs_infinity": min(ratios.values()) if ratios else None,
        "at_least_3x_infinity_everywhere": bool(ratios) and min(ratios.values()) >= 3,
        "within_2_5x_of_floor_at_c1": over_floor is not None and over_floor <= 2.5,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        default="minilm-fp32,minilm-bf16,minilm-onnx-int8",
        help="FAMILY (the server's auto dtype), FAMILY-fp32, -bf16, -onnx or -onnx-int8, for the families "
        f"{', '.join(FAMILIES)}; tiny-listwise, tiny-listwise-qwen3 or a folder",
    )
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64]
    )
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--words", type=int, default=150, help="words per document (~200 tokens)")
    parser.add_argument("--rounds", type=int, default=1, help="requests per client at each level")
    parser.add_argument("--min-requests", type=int, default=8)
    parser.add_argument(
        "--peers", default="inprocess,infinity", help="comma-separated: inprocess, infinity (a family only)"
    )
    parser.add_argument("--infinity", default=INFINITY, help="the infinity_emb command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = [bench_model(name, args, Path(scratch)) for name in args.models.split(",")]
        named = [family_of(r["model"]) for r in results]
        first = next((n[0] for n in named if n is not None), None)
        ours = [r for r, n in zip(results, named, strict=True) if n is not None and n[0] == first]
        peers, ceiling = {}, {}
        if first is not None:
            family = FAMILIES[first]
            if args.peers:
                peers = bench_peers(args, family, ours[0]["tokens_per_request"])
            flops = request_flops(family, all_requests(args)[0], ours[0]["context_length"])
            ceiling = roofline(family, ours, flops)
    for result in ours:
        compare(result, peers)
        result["goals"] = goals(result)
    report = {
        "benchmark": "server_throughput",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "documents": args.documents,
        "words_per_document": args.words,
        "roofline": ceiling,
        "results": results,
        "peers": peers,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
