"""The listwise server against the plain reference computation, at the real
jina-reranker-v3 size (Qwen3-0.6B shape, random weights: speed does not depend
on weight values) and its real Qwen3 vocabulary, 50 documents x 256 tokens of
SciFact text, bf16 on a GPU.

    .venv/bin/python bench/listwise_gpu.py                 # on a GPU machine
    .venv/bin/python bench/listwise_gpu.py --shape tiny    # a quick check on CPU

Reference: what the published model code does, one request at a time, one
block per forward, asking for all hidden states. Server: `rerank-bridge`'s
gRPC server on loopback, with dynamic batching, at each concurrency level.
Prints JSON with the device name, p50 latency and documents/s of both, and
the throughput ratio server / reference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from rerank_bridge.devtools.tiny_models import QWEN3_0_6B, build_listwise
from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.backends.listwise_prompt import block_prompt
from rerank_bridge.server.backends.model_files import read_tensors
from rerank_bridge.server.config import ServerConfig
from rerank_bridge.server.devices import resolve_placement
from workload import FILLER, grpc_caller, load, passages, progress, summarise


def make_requests(count: int, documents: int, doc_tokens: int, tokenizer: Any) -> list[pb.RerankRequest]:
    """SciFact abstracts cut to exactly `doc_tokens` tokens of the model's vocabulary."""
    import random

    rng = random.Random(0)
    pool = [
        tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:doc_tokens])
        for text in passages(documents * 3, doc_tokens * 2)
    ]
    requests = []
    for _ in range(count):
        docs = [pb.Document(id=str(i), text=text) for i, text in enumerate(rng.sample(pool, documents))]
        query = " ".join(rng.choices(FILLER, k=12))
        requests.append(pb.RerankRequest(query=query, documents=docs, max_document_tokens=doc_tokens))
    return requests


class Reference:
    """The plain computation: whole prompt, one forward, all hidden states kept."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = (
            AutoModel.from_pretrained(str(folder), dtype=dtype, attn_implementation="sdpa").to(device).eval()
        )
        weights = read_tensors(folder, ["projector.0.weight", "projector.2.weight"])
        self.w1 = weights["projector.0.weight"].to(device, dtype)
        self.w2 = weights["projector.2.weight"].to(device, dtype)
        self.doc_id = self.tokenizer.convert_tokens_to_ids("<|embed_token|>")
        self.query_id = self.tokenizer.convert_tokens_to_ids("<|rerank_token|>")
        self.device = device

    @torch.no_grad()
    def scores(self, request: pb.RerankRequest) -> list[float]:
        prompt = block_prompt(request.query, [d.text for d in request.documents])
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"].to(self.device)
        hidden = self.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        projected = torch.relu(hidden @ self.w1.T) @ self.w2.T
        docs = projected[ids[0] == self.doc_id].float()
        query = projected[ids[0] == self.query_id].float()
        return F.cosine_similarity(query, docs, dim=-1).tolist()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=["full", "tiny"], default="full")
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--doc-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--reference-requests", type=int, default=16)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    placement = resolve_placement(args.device)
    device_name = torch.cuda.get_device_name(placement.device) if placement.device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as scratch:
        progress(f"building a random {args.shape} model")
        folder = build_listwise(
            Path(scratch) / "listwise",
            context_length=131072 if args.shape == "full" else 32768,
            shape=QWEN3_0_6B if args.shape == "full" else None,
            weights_dtype=placement.dtype,
            # The full shape reads prompts with the real Qwen3 tokenizer (qwen_vocab.py).
            vocabulary="qwen3" if args.shape == "full" else "trained",
        )
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        requests = make_requests(
            max(args.requests, args.reference_requests), args.documents, args.doc_tokens, tokenizer
        )

        progress("reference: one request at a time, all hidden states")
        reference = Reference(folder, placement.device, placement.dtype)
        reference.scores(requests[0])  # warm-up
        latencies = []
        wall = time.perf_counter()
        for request in requests[: args.reference_requests]:
            started = time.perf_counter()
            reference.scores(request)
            sync(placement.device)
            latencies.append(time.perf_counter() - started)
        reference_stats = summarise(latencies, time.perf_counter() - wall, args.documents)
        peak_reference = torch.cuda.max_memory_allocated() if placement.device.type == "cuda" else 0
        del reference
        if placement.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

        config = ServerConfig(
            model=str(folder),
            port=0,
            embed_model="none",
            device=args.device,
            max_batch_tokens=262144,
            max_document_tokens=max(2048, args.doc_tokens),
        )
        levels = []
        with BackgroundServer(config) as server:
            load(grpc_caller(server.address), requests[:2], 1)  # warm-up at the real shape
            for concurrency in args.concurrency:
                progress(f"server: {args.requests} requests at concurrency {concurrency}")
                levels.append(load(grpc_caller(server.address), requests[: args.requests], concurrency))
        peak_server = torch.cuda.max_memory_allocated() if placement.device.type == "cuda" else 0

    best = max(level["documents_per_s"] for level in levels)
    report = {
        "benchmark": "listwise_gpu",
        "device": device_name,
        "dtype": placement.dtype_name,
        "attention": placement.attention,
        "shape": args.shape,
        "documents": args.documents,
        "tokens_per_document": args.doc_tokens,
        "reference": {**reference_stats, "peak_memory_gib": round(peak_reference / 2**30, 2)},
        "server": {"levels": levels, "peak_memory_gib": round(peak_server / 2**30, 2)},
        "throughput_ratio_best": round(best / reference_stats["documents_per_s"], 2),
        "latency_ratio_c1": round(levels[0]["p50_ms"] / reference_stats["p50_ms"], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
