"""Builds a collection of long documents from XQuAD-R (shared/data/xquad-r/<lang>),
for comparing head truncation with chunked scoring (`rerank-bridge eval --chunking`).

    python tools/long_documents.py OUT [--lang en] [--paragraphs 2]

Each document joins `--paragraphs` consecutive paragraphs of one Wikipedia
article (sentences in their order), so it runs to several hundred tokens and a
question's answer sentence sits anywhere in it: at the head or far past it. A
question's one relevant document is the one that holds its answer sentence
(the collection's own judgment, carried over). BEIR layout: corpus.jsonl,
queries.jsonl, qrels.tsv.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from rerank_bridge.devtools import checkout

DATA = checkout.shared_data("xquad-r")


def build(out: Path, lang: str = "en", paragraphs_per_document: int = 2) -> dict[str, int]:
    source = DATA / lang
    sentences = [json.loads(line) for line in (source / "corpus.jsonl").open(encoding="utf-8")]
    by_article: dict[str, dict[str, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for sentence in sentences:
        meta = sentence["metadata"]
        by_article[meta["article"]][meta["paragraph"]].append(sentence)
    document_of: dict[str, str] = {}
    corpus = []
    for article, paragraphs in by_article.items():
        names = list(paragraphs)  # in corpus order
        for start in range(0, len(names), paragraphs_per_document):
            group = names[start : start + paragraphs_per_document]
            doc_id = f"{lang}-{article}-{group[0]}"
            members = [s for name in group for s in paragraphs[name]]
            corpus.append(
                {
                    "_id": doc_id,
                    "title": article.replace("_", " "),
                    "text": " ".join(s["text"] for s in members),
                }
            )
            document_of.update({s["_id"]: doc_id for s in members})
    qrels = [line.rstrip("\n").split("\t") for line in (source / "qrels.tsv").open(encoding="utf-8")][1:]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as sink:
        sink.writelines(json.dumps(doc, ensure_ascii=False) + "\n" for doc in corpus)
    (out / "queries.jsonl").write_bytes((source / "queries.jsonl").read_bytes())
    with (out / "qrels.tsv").open("w", encoding="utf-8") as sink:
        sink.write("query-id\tcorpus-id\tscore\n")
        sink.writelines(f"{query}\t{document_of[sentence]}\t{score}\n" for query, sentence, score in qrels)
    return {"documents": len(corpus), "queries": len({q for q, _, _ in qrels}), "qrels": len(qrels)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--lang", default="en")
    parser.add_argument("--paragraphs", type=int, default=2, help="paragraphs joined into one document")
    args = parser.parse_args()
    print(json.dumps(build(args.out, args.lang, args.paragraphs)))


if __name__ == "__main__":
    main()
