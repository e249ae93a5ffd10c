"""Reading a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels.tsv, each
possibly gzipped (`.gz` is read transparently)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


def find(folder: Path, name: str) -> Path | None:
    """`name` in the folder, or `name.gz`; None when neither is there."""
    return next((path for path in (folder / name, folder / f"{name}.gz") if path.exists()), None)


def open_text(path: Path) -> IO[str]:
    """A text file, gunzipped on the way when its name ends in .gz."""
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _required(folder: Path, name: str) -> Path:
    found = find(folder, name)
    if found is None:
        raise FileNotFoundError(f"{folder} has neither {name} nor {name}.gz")
    return found


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open_text(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def collection_name(folder: Path) -> str:
    """The folder's path as given, less dot segments: `xquad-r/es` stays itself
    rather than becoming `es`, so two collections never share a name."""
    parts = [part for part in folder.as_posix().split("/") if part not in ("", ".", "..")]
    return "/".join(parts) or folder.resolve().name


@dataclass(frozen=True)
class Collection:
    name: str
    corpus: dict[str, dict[str, str]]  # id -> {"title", "text"}
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded gain
    # A digest of every passage and every query text (before sampling): cached
    # scores are keyed by it, so only the same content shares them.
    fingerprint: str = ""

    def passage(self, doc_id: str) -> str:
        doc = self.corpus[doc_id]
        return f"{doc['title']}\n{doc['text']}".strip()


def judged_relevant(judged: dict[str, int]) -> bool:
    """Whether a query's judgments hold a relevant document (a gain above 0)."""
    return any(gain > 0 for gain in judged.values())


def load_collection(
    folder: Path, max_queries: int | None = None, seed: int = 0, name: str | None = None
) -> Collection:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    corpus = {
        str(d["_id"]): {"title": d.get("title") or "", "text": d.get("text") or ""}
        for d in read_jsonl(_required(folder, "corpus.jsonl"))
    }
    qrels: dict[str, dict[str, int]] = {}
    with open_text(_required(folder, "qrels.tsv")) as handle:
        for i, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            query_id, doc_id, gain = parts[0], parts[1], int(parts[2])
            qrels.setdefault(query_id, {})[doc_id] = gain
    every_query = {str(q["_id"]): q["text"] for q in read_jsonl(_required(folder, "queries.jsonl"))}
    digest = hashlib.sha256()
    for key, value in [*sorted(corpus.items()), *sorted(every_query.items())]:
        digest.update(json.dumps([key, value], sort_keys=True).encode())
    # Only queries with at least one relevant document count, as in BEIR, and only those
    # with a text: a blank one cannot be searched (CMRC 2018's trial set has two).
    queries = {
        q: text for q, text in every_query.items() if text.strip() and judged_relevant(qrels.get(q, {}))
    }
    if max_queries is not None and len(queries) > max_queries:
        chosen = sorted(random.Random(seed).sample(sorted(queries), max_queries))
        queries = {q: queries[q] for q in chosen}
    judged = {q: qrels[q] for q in queries}
    return Collection(name or collection_name(folder), corpus, queries, judged, digest.hexdigest())
