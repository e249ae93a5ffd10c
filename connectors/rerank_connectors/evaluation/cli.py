"""`rerank-bridge eval`: index a BEIR-layout collection in a real engine, run
BM25, kNN and hybrid with and without reranking, and report the metrics.

    rerank-bridge eval --data ../shared/data/scifact --engine elasticsearch --depths 10,20,50

Its arguments are declared in arguments.py, which imports nothing heavy.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from typing import Any

from rerank_bridge_proto.v1 import rerank_pb2 as pb
from rerank_connectors.client import RerankClient
from rerank_connectors.connector import RerankingSearch
from rerank_connectors.dialects import engine_client
from rerank_connectors.evaluation import report
from rerank_connectors.evaluation.arguments import STAGES
from rerank_connectors.evaluation.beir import load_collection
from rerank_connectors.evaluation.indexing import ensure_index
from rerank_connectors.evaluation.runner import evaluate_collection


def chunking(spec: str | None) -> pb.Chunking | None:
    """`SIZE[:OVERLAP]` as the server's chunking settings."""
    if not spec:
        return None
    size, _, overlap = spec.partition(":")
    try:
        settings = pb.Chunking(enabled=True, size=int(size))
        if overlap:
            settings.overlap = int(overlap)
    except ValueError:
        raise SystemExit(f"--chunking: expected SIZE[:OVERLAP] in tokens, got {spec!r}") from None
    return settings


def run(args: argparse.Namespace) -> dict[str, Any]:
    depths = sorted({int(d) for d in args.depths.split(",")})
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown first stages: {', '.join(sorted(unknown))}; known: {', '.join(STAGES)}")
    collection = load_collection(args.data, args.max_queries)
    with ExitStack() as stack:
        address = args.reranker
        if address is None:
            from rerank_server.app import BackgroundServer
            from rerank_server.config import ServerConfig

            print(f"starting a scoring server on {args.model}", file=sys.stderr, flush=True)
            server = BackgroundServer(
                ServerConfig(model=args.model, port=0, max_documents=max(1000, 3 * max(depths)))
            )
            stack.callback(server.stop)
            address = server.start().address
        url = args.engine_url
        if url is None:
            from rerank_connectors import local_engines

            print(f"starting a local {args.engine} node", file=sys.stderr, flush=True)
            node = local_engines.start(args.engine, heap="1g")
            stack.callback(node.stop)
            url = node.url
        engine = engine_client(args.engine, url, timeout=300)
        stack.callback(engine.close)
        reranker = stack.enter_context(RerankClient(address, timeout=600))
        index = ensure_index(engine, args.engine, collection, reranker)
        result = evaluate_collection(
            RerankingSearch(engine, reranker),
            reranker,
            index,
            collection,
            stages,
            depths,
            latency_queries=args.latency_queries,
            chunking=chunking(args.chunking),
            max_document_tokens=args.max_document_tokens,
        )
    result["engine"] = args.engine
    json_path, png_path = report.write(result, args.out)
    print(report.table(result))
    print(f"\nwrote {json_path} and {png_path}")
    return result
