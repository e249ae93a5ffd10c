"""`rerank-bridge eval`: index a BEIR-layout collection in a real engine, run
BM25, kNN and hybrid with and without reranking, and report the metrics.

    rerank-bridge eval --data ../shared/data/scifact --engine elasticsearch --depths 10,20,50

Its arguments are declared in arguments.py, which imports nothing heavy.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from contextlib import ExitStack
from typing import Any

import grpc

from rerank_bridge.evaluation import records as records_module
from rerank_bridge.evaluation import report
from rerank_bridge.evaluation.beir import Collection, load_collection
from rerank_bridge.evaluation.indexing import ensure_index
from rerank_bridge.evaluation.records import RERANKED, QueryRecord
from rerank_bridge.evaluation.runner import TEXT_FIELDS, evaluate_collection
from rerank_bridge.evaluation.tuning import Gate, bridge_snippet, per_query_ndcg, setting_of, tune
from rerank_bridge.search.blending import BlendSettings
from rerank_bridge.search.client import RerankClient
from rerank_bridge.search.connector import RerankingSearch
from rerank_bridge.search.dialects import DIALECTS, kind_answering
from rerank_bridge.search.settings import ChunkingSettings


def chunking(spec: str | None) -> ChunkingSettings | None:
    """`SIZE[:OVERLAP]` as the server's chunking settings."""
    if not spec:
        return None
    size, _, overlap = spec.partition(":")
    try:
        return ChunkingSettings(size=int(size), overlap=int(overlap) if overlap else None)
    except ValueError:  # not a number, or pydantic's ValidationError (a ValueError) for a bad one
        raise SystemExit(f"--chunking: expected SIZE[:OVERLAP] in tokens, got {spec!r}") from None


def read_collection(args: argparse.Namespace) -> Collection:
    """The collection, or one line saying what is wrong with the folder."""
    try:
        collection = load_collection(args.data, args.max_queries, name=args.name)
    except FileNotFoundError as error:
        raise SystemExit(f"--data: {error}") from None
    except (ValueError, KeyError, IndexError) as error:
        raise SystemExit(f"--data {args.data}: not a BEIR-layout collection ({error!r})") from None
    if not collection.queries:
        raise SystemExit(f"--data {args.data}: no query has a relevant document in qrels.tsv")
    if args.tune and len(collection.queries) < args.folds:
        raise SystemExit(
            f"--folds {args.folds} needs at least {args.folds} judged queries; "
            f"{args.data} has {len(collection.queries)}"
        )
    return collection


def reachable_reranker(address: str) -> None:
    """A scoring server answers at `address`, or one line says nothing does."""
    with RerankClient(address, timeout=15) as probe:
        try:
            probe.model_info()
        except grpc.RpcError as error:
            raise SystemExit(
                f"--reranker {address}: no scoring server answers there ({error.code().name}: "
                f"{error.details()})"
            ) from None


def engine_kind_at(url: str, asked: str | None) -> str:
    """What the node at `url` is, told as the bridge tells it, and checked against
    --engine when it was given."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/", timeout=15) as answer:
            headers, root = answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        headers, root = error.headers, None
    except Exception as error:  # refused, TLS, a proxy's HTML: say so in one line
        raise SystemExit(f"--engine-url {url}: no engine answers there ({error})") from None
    found = kind_answering(headers.get("X-Elastic-Product"), root)
    if found is None:
        raise SystemExit(f"--engine-url {url}: the answer is neither Elasticsearch's nor OpenSearch's")
    if asked is not None and asked != found:
        raise SystemExit(f"--engine-url {url} is {found}, not {asked}: say --engine {found}, or leave it out")
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every argument and the collection are checked before anything is started or indexed."""
    if args.from_queries is not None:
        return retune(args)
    depths, stages, chunked = args.depths, args.stages, chunking(args.chunking)
    collection = read_collection(args)
    if args.reranker is not None:
        reachable_reranker(args.reranker)
    if args.engine_url is None:
        raise SystemExit(
            "--engine-url: required (a local node to try it on: tools/local_engines.py start elasticsearch)"
        )
    kind = engine_kind_at(args.engine_url, args.engine)
    with ExitStack() as stack:
        address = args.reranker
        if address is None:
            from rerank_bridge.server.app import BackgroundServer
            from rerank_bridge.server.config import ServerConfig

            print(f"starting a scoring server on {args.model}", file=sys.stderr, flush=True)
            server = BackgroundServer(
                ServerConfig(
                    model=args.model,
                    embed_model=args.embed_model,
                    port=0,
                    max_documents=max(1000, 3 * max(depths)),
                )
            )
            stack.callback(server.stop)
            address = server.start().address
        engine = DIALECTS[kind].client(args.engine_url, timeout=300)
        stack.callback(engine.close)
        reranker = stack.enter_context(RerankClient(address, timeout=600))
        index = ensure_index(engine, collection, reranker)
        result, records = evaluate_collection(
            RerankingSearch(engine, reranker),
            reranker,
            index,
            collection,
            stages,
            depths,
            latency_queries=args.latency_queries,
            chunking=chunked,
            max_document_tokens=args.max_document_tokens,
        )
    result["engine"] = kind
    result["index"] = index
    return finish(args, result, records, collection.qrels, args.index_pattern or index)


def finish(
    args: argparse.Namespace,
    result: dict[str, Any],
    records: list[QueryRecord],
    qrels: dict[str, dict[str, int]],
    pattern: str,
) -> dict[str, Any]:
    """Tunes (with --tune), writes the report, the per-query records and the
    config snippets, and prints the tables."""
    depth = max(result["depths"])
    args.out.mkdir(parents=True, exist_ok=True)
    snippets = []
    if args.tune:
        result["tuning"] = {}
        for stage in dict.fromkeys(r.stage for r in records):
            stage_records = [r for r in records if r.stage == stage]
            cost = rerank_cost(result, stage, depth)
            tuned = tune(qrels, stage_records, depth, args.folds, gate_of(args), cost)
            result["tuning"][stage] = tuned
            snippet = args.out / f"{report.stem(result)}-{stage}.bridge.yaml"
            snippet.write_text(bridge_snippet(pattern, list(TEXT_FIELDS), stage, tuned))
            tuned["config_snippet"] = str(snippet)
            snippets.append(snippet)
    queries_path = args.out / f"{report.stem(result)}.queries.jsonl"
    records_module.write(queries_path, records, audit(qrels, records, result))
    result["per_query"] = str(queries_path)
    paths = report.write(result, args.out)
    if result["results"]:
        print(report.table(result) + "\n")
    if args.tune:
        print(report.tuning_table(result))
    written = ", ".join(str(p) for p in [*paths, queries_path, *snippets])
    print(f"\nwrote {written}")
    return result


def gate_of(args: argparse.Namespace) -> Gate:
    return Gate(rule=args.gate, gain_per_second=args.min_gain_per_second)


def rerank_cost(result: dict[str, Any], stage: str, depth: int) -> float | None:
    """The median latency of reranking the stage's window of `depth` (documents read by
    their head); None where it was not measured (a re-tune from records)."""
    for row in result["results"]:
        head = row.get("long_documents", "head") == "head"
        if row["stage"] == stage and row["rerank_depth"] == depth and head:
            cost = row.get("rerank_ms_p50")
            return None if cost is None else float(cost)
    return None


def audit(
    qrels: dict[str, dict[str, int]], records: list[QueryRecord], result: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Beside each record: its final rankings and their nDCG@10 (first stage, reranked
    at each depth, and the recommended blend where --tune chose one)."""
    extras: dict[tuple[str, str], dict[str, Any]] = {}
    for stage in dict.fromkeys(r.stage for r in records):
        stage_records = [r for r in records if r.stage == stage]
        variants: dict[str, tuple[int, BlendSettings | None]] = {"first_stage": (0, None)}
        variants.update({f"reranked@{d}": (d, RERANKED) for d in result["depths"]})
        tuned = result.get("tuning", {}).get(stage)
        if tuned is not None and (chosen := setting_of(tuned["recommended"])) is not None:
            variants["blended"] = (max(result["depths"]), chosen)
        for name, (depth, setting) in variants.items():
            values = per_query_ndcg(qrels, stage_records, depth, setting)
            for record, value in zip(stage_records, values, strict=True):
                entry = extras.setdefault((stage, record.query_id), {"final": {}, "ndcg@10": {}})
                entry["final"][name] = record.ranking(depth, setting)[:depth] if depth else None
                entry["ndcg@10"][name] = round(float(value), 4)
                if name == "blended":
                    entry["blend"] = setting.describe() if setting is not None else None
    return extras


def retune(args: argparse.Namespace) -> dict[str, Any]:
    """--tune from an earlier run's per-query records: the judgments from --data."""
    if not args.tune:
        raise SystemExit("--from-queries re-tunes: add --tune")
    if not args.from_queries.is_file():
        raise SystemExit(f"--from-queries: {args.from_queries} is not a file")
    records = records_module.read(args.from_queries)
    if not records:
        raise SystemExit(f"--from-queries: {args.from_queries} holds no records")
    collection = read_collection(args)
    records = [r for r in records if r.query_id in collection.qrels]
    depths = sorted({depth for r in records for depth in r.reranker})
    # The earlier run's files are `<collection>-<engine>.queries.jsonl`: its engine part, retuned
    # (the collection's name is the stem's first part again, not twice).
    earlier = args.from_queries.name.removesuffix(".gz").removesuffix(".queries.jsonl")
    result = {
        "dataset": collection.name,
        "engine": earlier.removeprefix(f"{report.slug(collection.name)}-") + "-retuned",
        "queries": len({r.query_id for r in records}),
        "depths": depths,
        "from_queries": str(args.from_queries),
        "results": [],
    }
    return finish(args, result, records, collection.qrels, args.index_pattern or "*")
