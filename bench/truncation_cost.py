"""What a huge document costs before the model: each backend's plan (truncation,
tokenisation, prompt or pair building) for one 5 MB document at the server's
default caps, against tokenising the whole text as backends did before the
character bound.

    .venv/bin/python bench/truncation_cost.py
    .venv/bin/python bench/truncation_cost.py --megabytes 1 --runs 5

Prints JSON: per backend the plan's median ms, and the whole-text tokenisation's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rerank_bridge.devtools.tiny_models import build_cross_encoder, build_listwise
from rerank_bridge.server.backends.base import Backend
from rerank_bridge.server.backends.fake import FakeBackend
from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.backends.registry import builtin_minilm_folder
from rerank_bridge.server.backends.torch_pointwise import load_bi_encoder, load_cross_encoder
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, RerankRequest
from workload import progress

QUERY_CAP, DOCUMENT_CAP = 512, 2048  # the server's defaults


def median_ms(call: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sentence = "Proteins fold into the shapes that decide their function in the cell. "
    text = sentence * int(args.megabytes * 1024 * 1024 / len(sentence))
    request = RerankRequest(
        query="how do proteins fold",
        documents=(Document("huge", text), Document("small", sentence)),
        top_n=None,
        instruction="",
        max_query_tokens=QUERY_CAP,
        max_document_tokens=DOCUMENT_CAP,
    )
    placement = resolve_placement("cpu")
    with tempfile.TemporaryDirectory() as scratch:
        backends: dict[str, Backend] = {
            "fake": FakeBackend("", QUERY_CAP, DOCUMENT_CAP),
            "minilm (bi-encoder)": load_bi_encoder(
                builtin_minilm_folder(), "minilm", placement, QUERY_CAP, DOCUMENT_CAP
            ),
            "tiny cross-encoder": load_cross_encoder(
                build_cross_encoder(Path(scratch) / "ce"), "ce", placement, QUERY_CAP, DOCUMENT_CAP
            ),
            "tiny listwise": ListwiseBackend(
                build_listwise(Path(scratch) / "lw"), "lw", placement, QUERY_CAP, DOCUMENT_CAP
            ),
        }
        results = {}
        for name, backend in backends.items():
            progress(f"{name}")
            result: dict[str, Any] = {
                "plan_ms": median_ms(lambda b=backend: b.plan_rerank(request), args.runs)
            }
            truncator = getattr(backend, "truncator", None)
            if truncator is not None:
                result["character_bound_at_cap"] = truncator.char_bound(DOCUMENT_CAP)
                result["whole_text_tokenisation_ms"] = median_ms(
                    lambda t=truncator: t.backend.encode_batch([text], add_special_tokens=False), 1
                )
            results[name] = result
    print(
        json.dumps(
            {
                "benchmark": "truncation_cost",
                "document_characters": len(text),
                "caps": {"query_tokens": QUERY_CAP, "document_tokens": DOCUMENT_CAP},
                "runs": args.runs,
                "backends": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
