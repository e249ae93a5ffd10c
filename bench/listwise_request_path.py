"""The listwise request path alone: everything the server does for a Rerank call
except the forward pass, with the real Qwen3 vocabulary.

    .venv/bin/python bench/listwise_request_path.py
    .venv/bin/python bench/listwise_request_path.py --documents 10,50,100 --tokens 256 --requests 50

Per request: parse the wire bytes, validate, strip markers, cut to the token cap,
build and tokenise the prompt, pack blocks, turn (pre-made) model outputs into
scores, build and serialise the response. Documents are SciFact abstracts cut
to exactly `--tokens` Qwen3 tokens. `prompt_building` (parse, validate, build
the blocks' ids) is timed again through the previous path, where the whole
prompt string went through the transformers tokenizer and the markers were
found by scanning the ids, for the ratio.
Prints JSON: p50/p95 ms per request at each size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rerank_bridge.devtools.tiny_models import build_listwise
from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.server import chunking, response_messages, validation
from rerank_bridge.server.backends.listwise import BlockInput, BlockOutput, ListwiseBackend
from rerank_bridge.server.backends.listwise_prompt import block_prompt, pack_blocks, strip_markers
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Timings
from workload import passages, progress

LIMITS = validation.RequestLimits(
    max_documents=1000, max_query_tokens=512, max_document_tokens=2048, max_embed_texts=512
)


QUERY = "which proteins does the immune response change in older patients"


def exact_token_passages(backend: ListwiseBackend, documents: int, tokens: int) -> list[str]:
    """A pool of SciFact abstracts (three per document) cut to exactly `tokens` tokens."""
    return [
        backend.tokenizer.decode(backend.truncator.cut([text], tokens)[0].ids)
        for text in passages(documents * 3, tokens * 2, seed=documents)
    ]


def wire_requests(backend: ListwiseBackend, count: int, documents: int, tokens: int) -> list[bytes]:
    """Serialised requests whose documents are exactly `tokens` tokens long."""
    pool = exact_token_passages(backend, documents, tokens)
    requests = []
    for r in range(count):
        chosen = [pool[(r + i * 7) % len(pool)] for i in range(documents)]
        message = pb.RerankRequest(
            query=QUERY,
            documents=[pb.Document(id=f"d{i}", text=text) for i, text in enumerate(chosen)],
        )
        requests.append(message.SerializeToString())
    return requests


def fake_outputs(backend: ListwiseBackend, payloads: list[Any]) -> list[BlockOutput]:
    """What a forward pass would return, made before the clock starts."""
    width = backend.projector[2].out_features
    generator = torch.Generator().manual_seed(0)
    return [
        BlockOutput(
            documents=torch.randn(len(b.doc_positions), width, generator=generator),
            query=torch.randn(width, generator=generator),
        )
        for b in payloads
    ]


def lean_path(backend: ListwiseBackend) -> Callable[[bytes, list[BlockOutput]], bytes]:
    def serve(raw: bytes, outputs: list[BlockOutput]) -> bytes:
        message = pb.RerankRequest.FromString(raw)
        domain = validation.rerank_request(message, LIMITS, backend.returns_embeddings)
        plan = chunking.plan(backend, domain, LIMITS.max_chunks_per_request)
        outcome = plan.finish(outputs)
        response = response_messages.rerank_response(
            outcome, domain.top_n, Timings(0.0, 0.0), 0.0, backend.model_id
        )
        return bytes(response.SerializeToString())

    return serve


def planned(backend: ListwiseBackend, raw: bytes) -> list[BlockInput]:
    """Parse, validate and build the blocks (the part the previous path did differently)."""
    message = pb.RerankRequest.FromString(raw)
    domain = validation.rerank_request(message, LIMITS, backend.returns_embeddings)
    return [s.payload for s in chunking.plan(backend, domain, LIMITS.max_chunks_per_request).sequences]


def whole_prompt_blocks(backend: ListwiseBackend, raw: bytes) -> list[BlockInput]:
    """The previous path: cut texts decoded back, each block's whole prompt tokenised
    by the transformers tokenizer, markers found by scanning every id."""
    message = pb.RerankRequest.FromString(raw)
    domain = validation.rerank_request(message, LIMITS, backend.returns_embeddings)
    texts = [strip_markers(domain.query)] + [strip_markers(d.text) for d in domain.documents]
    cuts = backend.truncator.cut(texts, domain.max_document_tokens)
    read = [backend.tokenizer.decode(c.ids) if c.truncated else t for t, c in zip(texts, cuts, strict=True)]
    blocks = pack_blocks(
        [c.tokens for c in cuts[1:]],
        cuts[0].tokens,
        backend.limits.context_length,
        domain.max_document_tokens,
        backend.limits.max_documents_per_pass,
    )
    inputs = []
    for block in blocks:
        ids = backend.tokenizer(
            block_prompt(read[0], [read[1 + i] for i in block]), add_special_tokens=False
        )["input_ids"]
        positions = [i for i, t in enumerate(ids) if t == backend.doc_marker_id]
        query = [i for i, t in enumerate(ids) if t == backend.query_marker_id]
        inputs.append(BlockInput(torch.tensor(ids).numpy(), positions, query[0]))
    return inputs


def timed(function: Callable[[], object], repeats: int) -> dict[str, float]:
    function()  # warm caches (prefix ids, allocator)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1e3)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[max(0, int(0.95 * len(samples)) - 1)], 3),
    }


def measure(backend: ListwiseBackend, documents: int, args: argparse.Namespace) -> dict[str, Any]:
    progress(f"{documents} documents x {args.tokens} tokens")
    serve = lean_path(backend)
    requests = wire_requests(backend, args.requests, documents, args.tokens)
    first = validation.rerank_request(pb.RerankRequest.FromString(requests[0]), LIMITS, True)
    plan = chunking.plan(backend, first, LIMITS.max_chunks_per_request)
    outputs = fake_outputs(backend, [s.payload for s in plan.sequences])
    # The two paths build the same ids: the comparison is like for like.
    old = whole_prompt_blocks(backend, requests[0])
    assert [b.ids.tolist() for b in old] == [s.payload.ids.tolist() for s in plan.sequences]
    queue = iter(requests * 4)
    lean = timed(lambda: serve(next(queue), outputs), args.requests)
    prompt = timed(lambda: planned(backend, next(queue)), args.requests)
    # The floor under both: the Rust tokenizer cutting this request's documents.
    texts = [d.text for d in first.documents]
    tokenizer = timed(lambda: backend.truncator.cut(texts, LIMITS.max_document_tokens), args.requests)
    whole = timed(lambda: whole_prompt_blocks(backend, next(queue)), args.requests)
    return {
        "documents": documents,
        "tokens_per_document": args.tokens,
        "prompt_tokens": sum(len(s.payload.ids) for s in plan.sequences),
        "blocks": len(plan.sequences),
        "request_path": lean,
        "prompt_building": prompt,
        "tokenizer_alone": tokenizer,
        "prompt_building_whole_prompt_tokenised": whole,
        "prompt_building_speedup_p50": round(whole["p50_ms"] / prompt["p50_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=lambda s: [int(x) for x in s.split(",")], default=[10, 50, 100])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per size")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as scratch:
        # The real model's context: 50 or 100 documents of 256 tokens fit one block.
        folder = build_listwise(Path(scratch) / "listwise", vocabulary="qwen3", context_length=131072)
        backend = ListwiseBackend(folder, "tiny-qwen3", resolve_placement("cpu"), 512, 2048)
        sizes = [measure(backend, documents, args) for documents in args.documents]
    print(
        json.dumps(
            {
                "benchmark": "listwise_request_path",
                "vocabulary": "qwen3 (151,643 BPE ranks + special tokens)",
                "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
                "sizes": sizes,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
