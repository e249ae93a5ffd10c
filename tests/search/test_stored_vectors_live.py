"""Reranking from the engine's stored vectors, on both engines: the connector reads the
vector field in the first-stage call and the model from the mapping's _meta, and the
scores equal the server's own encoding of the same texts; every mismatch (another
model recorded, none recorded, another dimension, a hit without a vector) falls back
to encoding, flagged per hit and in the summary; the HTTP bridge does the same for a
caller of the engine's official client. No hit is lost, and the order is the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.evaluation.indexing import index_mapping
from rerank_bridge.search import HIT_KEY, RerankClient, RerankingSearch, RerankSettings
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.search.settings import StoredVectorSettings
from rerank_bridge.search.stored_vectors import vector_meta
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import BUILTIN_MINILM
from support.bridge_runner import RunningBridge
from support.in_process import start_server
from support.live_fixtures import Corpus, Engine

pytestmark = pytest.mark.live

DOCUMENTS = 500
WINDOW = 30


@pytest.fixture(scope="module")
def exact_server() -> Iterator[BackgroundServer]:
    """fp32 with the cache off: each text is encoded for its own request, and a vector
    does not move with the batch it was encoded in."""
    server = start_server(model=BUILTIN_MINILM, embedding_cache_mb=0, dtype="float32")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def exact(exact_server: BackgroundServer) -> Iterator[RerankClient]:
    with RerankClient(exact_server.address, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def model_id(exact: RerankClient) -> str:
    return exact.model_info().model_id


@pytest.fixture(scope="module")
def vectors(exact: RerankClient, corpus: Corpus) -> list[list[float]]:
    texts = [doc["text"] for doc in corpus.docs[:DOCUMENTS]]
    return exact.embed(texts)


def source(doc: dict[str, Any], vector: list[float] | None) -> dict[str, Any]:
    return {"text": doc["text"]} | ({"vector": vector} if vector is not None else {})


class Indices:
    """Small indices of the corpus made by each test, deleted after the module."""

    def __init__(self, engine: Engine, corpus: Corpus, vectors: list[list[float]]) -> None:
        self.engine, self.corpus, self.vectors = engine, corpus, vectors
        self.made: list[str] = []

    def make(self, model: str, vectors: list[list[float] | None] | None = None) -> str:
        """An index of the first documents with `vectors` (default: the exact server's),
        its mapping recording `model` as their maker ("" records none)."""
        vectors = vectors if vectors is not None else list(self.vectors)
        dimensions = len(next(v for v in vectors if v is not None))
        client, dialect = self.engine.client, DIALECTS[self.engine.kind]
        name = f"rerank-bridge-vectors-{uuid.uuid4().hex[:8]}"
        client.indices.create(index=name, body=index_mapping(client, dimensions, {"text": {"type": "text"}}))
        if model:
            client.indices.put_mapping(index=name, body={"_meta": vector_meta("vector", model, dimensions)})
        actions = [
            {
                "_index": name,
                "_id": doc["_id"],
                "_source": {"text": doc["text"]} | ({"vector": v} if v else {}),
            }
            for doc, v in zip(self.corpus.docs, vectors, strict=False)
        ]
        dialect.bulk_helper()(client, actions, refresh=True)
        self.made.append(name)
        return name


@pytest.fixture(scope="module")
def indices(engine: Engine, corpus: Corpus, vectors: list[list[float]]) -> Iterator[Indices]:
    made = Indices(engine, corpus, vectors)
    yield made
    for name in made.made:
        engine.client.indices.delete(index=name)


@pytest.fixture
def search(engine: Engine, exact: RerankClient) -> RerankingSearch:
    return RerankingSearch(engine.client, exact)


@pytest.fixture(scope="module")
def query(corpus: Corpus) -> str:
    return str(corpus.queries[3]["text"])


def body(query: str) -> dict[str, Any]:
    return {"query": {"match": {"text": query}}, "size": WINDOW}


def settings(query: str, stored: StoredVectorSettings | None = None) -> RerankSettings:
    return RerankSettings(fields=("text",), query_text=query, rank_window_size=WINDOW, stored_vectors=stored)


def hits(response: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = response["hits"]["hits"]
    assert len({hit["_id"] for hit in found}) == len(found)  # none twice
    return found


def assert_same_ranking(got: dict[str, Any], expected: dict[str, Any], tolerance: float = 1e-4) -> None:
    assert [h["_id"] for h in hits(got)] == [h["_id"] for h in hits(expected)]
    for mine, theirs in zip(hits(got), hits(expected), strict=True):
        assert mine["_score"] == pytest.approx(theirs["_score"], abs=tolerance)
        assert mine["_source"] == theirs["_source"]
        assert "fields" not in mine  # the vector field was fetched for the bridge only


def test_stored_vectors_score_as_the_server_encodes(
    indices: Indices, search: RerankingSearch, model_id: str, query: str
) -> None:
    index = indices.make(model_id)
    encoded = search.search(index, body(query), rerank=settings(query))
    stored = search.search(index, body(query), rerank=settings(query, StoredVectorSettings(field="vector")))
    assert len(hits(encoded)) == WINDOW
    assert_same_ranking(stored, encoded)
    assert {hit[HIT_KEY]["vector"] for hit in hits(stored)} == {"stored"}
    assert all("vector" not in hit[HIT_KEY] for hit in hits(encoded))
    summary = stored["rerank"]["stored_vectors"]
    assert summary == {"field": "vector", "model": model_id, "stored": WINDOW, "cached": 0, "encoded": 0}


def test_vectors_another_model_made_are_encoded_over(
    indices: Indices, search: RerankingSearch, model_id: str, query: str
) -> None:
    index = indices.make("another-model")
    encoded = search.search(index, body(query), rerank=settings(query))
    response = search.search(index, body(query), rerank=settings(query, StoredVectorSettings(field="vector")))
    assert_same_ranking(response, encoded, tolerance=0.0)
    assert {hit[HIT_KEY]["vector"] for hit in hits(response)} == {"encoded"}
    summary = response["rerank"]["stored_vectors"]
    assert summary["model"] == "another-model" and summary["encoded"] == WINDOW
    assert "'another-model'" in summary["fallback"] and repr(model_id) in summary["fallback"]


def test_an_index_that_records_no_model_is_encoded_unless_the_model_is_named(
    indices: Indices, search: RerankingSearch, model_id: str, query: str
) -> None:
    index = indices.make("")
    unnamed = StoredVectorSettings(field="vector")
    response = search.search(index, body(query), rerank=settings(query, unnamed))
    assert {hit[HIT_KEY]["vector"] for hit in hits(response)} == {"encoded"}
    assert (
        f"no model recorded for 'vector' in the mapping of {index}"
        in response["rerank"]["stored_vectors"]["fallback"]
    )
    named = StoredVectorSettings(field="vector", model=model_id)
    response = search.search(index, body(query), rerank=settings(query, named))
    assert {hit[HIT_KEY]["vector"] for hit in hits(response)} == {"stored"}


def test_vectors_of_another_dimension_and_hits_without_one_are_encoded(
    indices: Indices, search: RerankingSearch, model_id: str, query: str, vectors: list[list[float]]
) -> None:
    short = indices.make(model_id, [vector[:16] for vector in vectors])
    encoded = search.search(short, body(query), rerank=settings(query))
    response = search.search(short, body(query), rerank=settings(query, StoredVectorSettings(field="vector")))
    assert_same_ranking(response, encoded, tolerance=0.0)
    assert "16 dimensions; the model's have 384" in response["rerank"]["stored_vectors"]["fallback"]
    # Every other document without a vector: those are encoded, the rest scored as stored.
    gappy: list[list[float] | None] = [v if i % 2 else None for i, v in enumerate(vectors)]
    index = indices.make(model_id, gappy)
    encoded = search.search(index, body(query), rerank=settings(query))
    response = search.search(index, body(query), rerank=settings(query, StoredVectorSettings(field="vector")))
    assert_same_ranking(response, encoded)
    without = {doc["_id"] for doc, v in zip(indices.corpus.docs, gappy, strict=False) if v is None}
    for hit in hits(response):
        assert hit[HIT_KEY]["vector"] == ("encoded" if hit["_id"] in without else "stored")
    summary = response["rerank"]["stored_vectors"]
    assert summary["fallback"] == f"{summary['encoded']} hits have no vector in 'vector'"
    assert summary["stored"] + summary["encoded"] == WINDOW and summary["encoded"] > 0


def test_the_bridge_reranks_from_stored_vectors_for_the_engines_own_client(
    indices: Indices, engine: Engine, exact_server: BackgroundServer, model_id: str, query: str
) -> None:
    index = indices.make(model_id)
    rerank = {"fields": ["text"], "rank_window_size": WINDOW}
    config = BridgeConfig(engine_url=engine.url, reranker=exact_server.address)
    with RunningBridge(config) as bridge:
        client = DIALECTS[engine.kind].client(bridge.url)
        try:
            answers = []
            for extra in ({}, {"stored_vectors": {"field": "vector"}}):
                search_body = body(query) | {"ext": {"rerank_bridge": {"rerank": {**rerank, **extra}}}}
                if engine.kind == "elasticsearch":
                    answer = client.search(index=index, **search_body)
                else:
                    answer = client.search(index=index, body=search_body)
                answers.append(dict(getattr(answer, "body", answer)))
        finally:
            client.close()
    encoded, stored = answers
    assert_same_ranking(stored, encoded)
    assert {hit[HIT_KEY]["vector"] for hit in hits(stored)} == {"stored"}
    assert stored["rerank"]["stored_vectors"]["stored"] == WINDOW
