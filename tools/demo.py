"""Demo: the scoring server on the offline default model (all-MiniLM-L6-v2)
reranks SciFact candidates; prints first-stage and reranked lists side by side.

The first stage here is a word-overlap ranking over the whole corpus, standing
in for an engine's BM25 until the engine connectors drive it.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections import Counter
from pathlib import Path

from rerank_connectors import RerankClient
from rerank_server.app import BackgroundServer
from rerank_server.config import ServerConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
WORD = re.compile(r"\w+")


def words(text: str) -> Counter[str]:
    return Counter(w for w in WORD.findall(text.lower()) if len(w) > 2)


def cell(rank: int, doc_id: str, corpus: dict[str, str], relevant: set[str]) -> str:
    mark = "*" if doc_id in relevant else " "
    return f"{mark}{rank + 1:>2}. {corpus[doc_id][:36]:<38}"


def main() -> None:
    if not DATA.exists():
        sys.exit(f"the SciFact data is expected at {DATA}")
    corpus = {}
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as handle:
        for line in handle:
            doc = json.loads(line)
            corpus[doc["_id"]] = f"{doc['title']}. {doc['text']}"
    queries = [json.loads(line) for line in (DATA / "queries.jsonl").open()][:3]
    relevant: dict[str, set[str]] = {}
    for line in list((DATA / "qrels.tsv").open())[1:]:
        query_id, doc_id, score = line.split("\t")
        if int(score) > 0:
            relevant.setdefault(query_id, set()).add(doc_id)
    bags = {doc_id: words(text) for doc_id, text in corpus.items()}

    print("starting the scoring server on all-MiniLM-L6-v2 (offline)...", flush=True)
    with BackgroundServer(ServerConfig(port=0)) as server, RerankClient(server.address) as client:
        for query in queries:
            terms = words(query["text"])
            first_stage = sorted(bags, key=lambda d: -sum(min(c, bags[d][w]) for w, c in terms.items()))[:20]
            ranking = client.rerank(query["text"], [(d, corpus[d]) for d in first_stage])
            good = relevant.get(query["_id"], set())
            print(f"\nquery: {query['text']}")
            print(f"{'first stage':<42}  {'reranked':<42}")
            for rank in range(10):
                left, right = first_stage[rank], ranking.documents[rank].id
                print(f"{cell(rank, left, corpus, good)}  {cell(rank, right, corpus, good)}")
    print("\n* = judged relevant in SciFact")


if __name__ == "__main__":
    main()
