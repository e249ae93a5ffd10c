"""The newcomer's demo: a real engine, the offline default model, real data.

Starts the scoring server on all-MiniLM-L6-v2 (packaged, offline), starts a
local Elasticsearch node (or OpenSearch with --engine opensearch, or uses
--engine-url), indexes the SciFact abstracts from shared/data, then runs a
few of SciFact's claims through BM25 and through BM25 + reranking and prints
both top tens side by side. `*` marks the abstracts SciFact judges relevant.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.search import HIT_KEY, RerankClient, RerankingSearch, RerankSettings
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import ServerConfig

DATA = checkout.shared_data("scifact")
INDEX = "scifact-demo"


def read_corpus() -> Iterator[dict[str, Any]]:
    with gzip.open(DATA / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def index_scifact(client: Any, kind: str) -> None:
    if client.indices.exists(index=INDEX):
        client.indices.delete(index=INDEX)
    mappings = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    client.indices.create(index=INDEX, body={"settings": {"number_of_replicas": 0}, "mappings": mappings})
    actions = (
        {"_index": INDEX, "_id": doc["_id"], "_source": {"title": doc["title"], "text": doc["text"]}}
        for doc in read_corpus()
    )
    with tqdm(total=5183, desc="indexing SciFact", unit="doc") as bar:
        for ok, _ in DIALECTS[kind].bulk_helper(streaming=True)(client, actions, chunk_size=500):
            bar.update(1 if ok else 0)
    client.indices.refresh(index=INDEX)


def relevant_docs() -> dict[str, set[str]]:
    judged: dict[str, set[str]] = {}
    for line in list((DATA / "qrels.tsv").open())[1:]:
        query_id, doc_id, score = line.rstrip("\n").split("\t")
        if int(score) > 0:
            judged.setdefault(query_id, set()).add(doc_id)
    return judged


def cell(rank: int, hit: dict[str, Any] | None, relevant: set[str], movement: str = "") -> str:
    if hit is None:
        return " " * 44
    mark = "*" if hit["_id"] in relevant else " "
    title = hit["_source"]["title"][:30]
    return f"{mark}{rank:>2}. {title:<30} {movement:>5}"


def show(query: dict[str, Any], first: dict[str, Any], reranked: dict[str, Any], relevant: set[str]) -> None:
    print(f"\nclaim: {query['text']}")
    print(f"{'BM25 (first stage)':<44}   {'BM25 + rerank (rank move)':<44}")
    left, right = first["hits"]["hits"], reranked["hits"]["hits"]
    for rank in range(1, 11):
        hit = right[rank - 1] if rank <= len(right) else None
        movement = ""
        if hit is not None:
            moved = hit[HIT_KEY]["first_stage_rank"] - rank
            movement = f"+{moved}" if moved > 0 else (str(moved) if moved < 0 else "=")
        print(
            f"{cell(rank, left[rank - 1] if rank <= len(left) else None, relevant)}   "
            f"{cell(rank, hit, relevant, movement)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=local_engines.KINDS, default="elasticsearch")
    parser.add_argument("--engine-url", help="use a running engine instead of starting one")
    parser.add_argument("--queries", type=int, default=3)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"the SciFact data is expected at {DATA}")

    print("starting the scoring server on all-MiniLM-L6-v2 (offline)...", flush=True)
    server = BackgroundServer(ServerConfig(port=0)).start()
    node = None
    try:
        url = args.engine_url
        if url is None:
            print(
                f"starting a local {args.engine} node (first run downloads it from Maven Central)...",
                flush=True,
            )
            node = local_engines.start(args.engine)
            url = node.url
        client = DIALECTS[args.engine].client(url, timeout=60)
        index_scifact(client, args.engine)
        judged = relevant_docs()
        queries = [json.loads(line) for line in (DATA / "queries.jsonl").open()]
        queries = [q for q in queries if q["_id"] in judged][: args.queries]
        with RerankClient(server.address, timeout=120) as reranker:
            search = RerankingSearch(client, reranker)
            for query in queries:
                body = {
                    "query": {"multi_match": {"query": query["text"], "fields": ["title", "text"]}},
                    "size": 10,
                }
                first = search.engine.search(index=INDEX, body=body)
                settings = RerankSettings(fields=("title", "text"), query_text=query["text"])
                reranked = search.search(INDEX, body, rerank=settings)
                show(query, dict(getattr(first, "body", first)), reranked, judged[query["_id"]])
        print("\n* = judged relevant in SciFact; the reranker read the top 50 BM25 hits")
        client.close()
    finally:
        if node is not None:
            node.stop()
        server.stop()


if __name__ == "__main__":
    main()
