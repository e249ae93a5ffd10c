"""Indexing a collection for evaluation: BM25 text fields and a vector field
filled by the scoring server's Embed. An index whose name carries the
fingerprint of the corpus and of the embedding model is reused as it is."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tqdm import tqdm

from rerank_bridge.evaluation.beir import Collection
from rerank_bridge.evaluation.cache import JsonCache, model_key
from rerank_bridge.search.client import RerankClient
from rerank_bridge.search.dialects import dialect_of
from rerank_bridge.search.stored_vectors import vector_meta

EMBED_BATCH = 128


def index_mapping(
    engine: Any, dimensions: int, properties: dict[str, Any] | None = None, vector_model: str = ""
) -> dict[str, Any]:
    """Text fields (title and text, or the `properties` given), and a cosine HNSW
    `vector` field in the syntax of the engine behind the client; with `vector_model`,
    the mapping's _meta records that model made the vectors, so that a bi-encoder
    reranker of that name scores them as they are (search/stored_vectors.py)."""
    vector_settings, vector = dialect_of(engine).vector_index(engine, dimensions)
    settings = {"number_of_shards": 1, "number_of_replicas": 0, **vector_settings}
    fields = properties if properties is not None else {"title": {"type": "text"}, "text": {"type": "text"}}
    mappings: dict[str, Any] = {"properties": {**fields, "vector": vector}}
    if vector_model:
        mappings["_meta"] = vector_meta("vector", vector_model, dimensions)
    return {"settings": settings, "mappings": mappings}


def index_name(collection: Collection, embed_model: str) -> str:
    digest = hashlib.sha256(embed_model.encode())
    for doc_id in sorted(collection.corpus):
        digest.update(doc_id.encode())
        digest.update(collection.passage(doc_id).encode())
    slug = re.sub(r"[^a-z0-9]+", "-", collection.name.lower()).strip("-")[-40:].strip("-")
    return f"rerank-eval-{slug}-{digest.hexdigest()[:12]}"


def ensure_index(engine: Any, collection: Collection, reranker: RerankClient) -> str:
    info = reranker.model_info()
    if not info.embed_model_id:
        raise RuntimeError("the scoring server serves no Embed model: start it with --embed-model")
    # A server on int8 embeds with int8 too: its vectors get an index of their own.
    name = index_name(collection, model_key(info.embed_model_id, info.embed_model_digest, info))
    meta = vector_meta("vector", info.embed_model_id, info.embed_dimensions)
    if engine.indices.exists(index=name):
        count = engine.count(index=name)["count"]
        if count == len(collection.corpus):
            # Same corpus, same model: reuse (recording the model, for an index made before it was).
            engine.indices.put_mapping(index=name, body={"_meta": meta})
            return name
        engine.indices.delete(index=name)
    body = index_mapping(engine, info.embed_dimensions, vector_model=info.embed_model_id)
    engine.indices.create(index=name, body=body)
    ids = list(collection.corpus)
    vectors = embed_corpus(collection, ids, reranker, JsonCache("vectors", name))
    bulk = dialect_of(engine).bulk_helper()
    for start in range(0, len(ids), 500):
        actions = [
            {"_index": name, "_id": doc_id, "_source": _source(collection, doc_id, vector)}
            for doc_id, vector in zip(ids[start : start + 500], vectors[start : start + 500], strict=True)
        ]
        bulk(engine, actions)
    engine.indices.refresh(index=name)
    return name


def _source(collection: Collection, doc_id: str, vector: list[float] | None) -> dict[str, Any]:
    """A document without text (Cranfield has two) is indexed without a vector:
    BM25 and kNN simply never find it, and it stays in the corpus count."""
    source: dict[str, Any] = dict(collection.corpus[doc_id])
    if vector is not None:
        source["vector"] = vector
    return source


def embed_corpus(
    collection: Collection, ids: list[str], reranker: RerankClient, cache: JsonCache
) -> list[Any]:
    """Every passage's vector (None for an empty passage), cached per corpus and model."""
    cached = cache.load()
    if cached is not None and len(cached) == len(ids):
        return list(cached)
    vectors: list[Any] = []
    with tqdm(total=len(ids), desc=f"embedding {collection.name}", unit="doc") as bar:
        for start in range(0, len(ids), EMBED_BATCH):
            batch = ids[start : start + EMBED_BATCH]
            texts = [collection.passage(doc_id) for doc_id in batch]
            present = iter(
                reranker.embed([t for t in texts if t.strip()], timeout=600, input_type="document")
            )
            vectors.extend(next(present) if text.strip() else None for text in texts)
            bar.update(len(batch))
    cache.save(vectors)
    return vectors
