"""A bi-encoder scores the vectors a request carries, and those its cache holds, as it
scores the texts it encodes; vectors it cannot use (another model, another dimension,
chunking, a model that reads text) fall back to encoding, said in the response and
the metrics; bad vectors are refused naming the field. Real models over real gRPC."""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.embedding_cache import ENTRY_OVERHEAD_BYTES, CachedVector, EmbeddingCache, cache_key
from rerank_bridge.server.models import fetching
from support.in_process import start_server

pytestmark = pytest.mark.slow

QUERY = "how much protein should a woman eat"
PASSAGES = [
    "Women need about 46 grams of protein a day.",
    "The river floods the valley every spring, and the farmers plant rice after it.",
    "Protein needs grow with age and activity: athletes may need twice as much.",
    "Le Parlement européen siège à Strasbourg.",
    "Eggs, beans and fish are good sources of protein.",
]
STORED, CACHED, ENCODED = pb.EMBEDDING_SOURCE_STORED, pb.EMBEDDING_SOURCE_CACHED, pb.EMBEDDING_SOURCE_ENCODED


def stub_of(server: BackgroundServer) -> Iterator[rerank_pb2_grpc.RerankerStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield rerank_pb2_grpc.RerankerStub(channel)


def vectors_of(
    stub: rerank_pb2_grpc.RerankerStub, input_type: int = pb.EMBED_INPUT_TYPE_DOCUMENT
) -> list[list[float]]:
    response = stub.Embed(pb.EmbedRequest(texts=PASSAGES, input_type=input_type), timeout=60)
    return [list(e.values) for e in response.embeddings]


def rerank(
    stub: rerank_pb2_grpc.RerankerStub,
    vectors: list[list[float] | None] | None = None,
    model: str = "",
    **fields: object,
) -> pb.RerankResponse:
    documents = [
        pb.Document(id=f"d{i}", text=text, embedding=(vectors[i] or []) if vectors else [])
        for i, text in enumerate(PASSAGES)
    ]
    request = pb.RerankRequest(query=QUERY, documents=documents, embeddings_model=model, **fields)
    return stub.Rerank(request, timeout=60)


def scores(response: pb.RerankResponse) -> dict[str, float]:
    assert sorted(r.index for r in response.results) == list(range(len(PASSAGES)))  # none lost or twice
    return {r.id: r.score for r in response.results}


def sources(response: pb.RerankResponse) -> dict[str, int]:
    return {r.id: r.source for r in response.results}


def fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("rerank_server_stored_vector_fallbacks_total", {"reason": reason}) or 0.0


@pytest.fixture(scope="module")
def minilm_server(minilm_dir: object) -> Iterator[BackgroundServer]:
    """The cache off, every text the model reads is encoded for the request; fp32, so a
    vector does not move with the batch it was encoded in."""
    server = start_server(model=str(minilm_dir), embedding_cache_mb=0, dtype="float32")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def minilm(minilm_server: BackgroundServer) -> Iterator[rerank_pb2_grpc.RerankerStub]:
    yield from stub_of(minilm_server)


@pytest.fixture(scope="module")
def model_id(minilm: rerank_pb2_grpc.RerankerStub) -> str:
    return str(minilm.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).model_id)


def test_stored_vectors_score_as_the_server_encodes_prompts_included() -> None:
    """multilingual-e5-small puts "query: " and "passage: " before texts: the stored
    vectors (Embed's, as an index holds them) must have had the document prompt. In
    fp32: at bf16 a vector moves with the batch it was encoded in (~2e-4 here), stored
    or not."""
    fetching.fetch("multilingual-e5-small")
    server = start_server(model="builtin:multilingual-e5-small", embedding_cache_mb=0, dtype="float32")
    try:
        for stub in stub_of(server):
            served = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).model_id
            encoded = rerank(stub)
            assert set(sources(encoded).values()) == {ENCODED}
            stored = rerank(stub, vectors_of(stub), served)
            assert set(sources(stored).values()) == {STORED} and not stored.embeddings_fallback
            assert stored.usage.sequences == 1  # the query alone went through the model
            expected = scores(encoded)
            for doc_id, score in scores(stored).items():
                assert score == pytest.approx(expected[doc_id], abs=1e-4)
            assert [r.id for r in stored.results] == [r.id for r in encoded.results]
            # Vectors made behind the query prompt are another thing: the test can tell.
            misprompted = scores(rerank(stub, vectors_of(stub, pb.EMBED_INPUT_TYPE_QUERY), served))
            assert max(abs(misprompted[d] - expected[d]) for d in expected) > 1e-3
    finally:
        server.stop()


def test_vectors_from_another_model_are_encoded_over(minilm: rerank_pb2_grpc.RerankerStub) -> None:
    before = fallbacks("model")
    response = rerank(minilm, vectors_of(minilm), "some-other-model")
    assert set(sources(response).values()) == {ENCODED}
    assert "'some-other-model'" in response.embeddings_fallback
    assert scores(response) == pytest.approx(scores(rerank(minilm)), abs=1e-6)
    assert fallbacks("model") == before + 1


def test_a_vector_of_another_dimension_is_encoded_the_others_scored(
    minilm: rerank_pb2_grpc.RerankerStub, model_id: str
) -> None:
    vectors: list[list[float] | None] = list(vectors_of(minilm))
    vectors[1] = [0.5] * 16
    vectors[3] = None  # a hit without a vector is encoded, without any fallback said
    before = fallbacks("dimensions")
    response = rerank(minilm, vectors, model_id)
    assert sources(response) == {"d0": STORED, "d1": ENCODED, "d2": STORED, "d3": ENCODED, "d4": STORED}
    assert response.embeddings_fallback == "1 of 4 stored vectors have 16 dimensions; the model's have 384"
    assert scores(response) == pytest.approx(scores(rerank(minilm)), abs=1e-4)
    assert fallbacks("dimensions") == before + 1


def test_chunked_scoring_reads_the_text(minilm: rerank_pb2_grpc.RerankerStub, model_id: str) -> None:
    response = rerank(minilm, vectors_of(minilm), model_id, chunking=pb.Chunking(enabled=True, size=8))
    assert STORED not in sources(response).values()
    assert "chunk" in response.embeddings_fallback


def test_a_model_that_reads_text_ignores_vectors(fake_stub: rerank_pb2_grpc.RerankerStub) -> None:
    documents = [
        pb.Document(id="a", text="the river", embedding=[0.1, 0.2]),
        pb.Document(id="b", text="city"),
    ]
    response = fake_stub.Rerank(
        pb.RerankRequest(query="river", documents=documents, embeddings_model="fake"), timeout=10
    )
    assert "scores the text, not vectors" in response.embeddings_fallback
    assert [r.source for r in response.results] == [pb.EMBEDDING_SOURCE_UNSPECIFIED] * 2


@pytest.mark.parametrize(
    ("vector", "model", "field"),
    [
        ([0.1, math.nan], "m", "documents[1].embedding"),
        ([0.1, math.inf], "m", "documents[1].embedding"),
        ([0.1, 0.2], "", "embeddings_model"),
    ],
)
def test_bad_vectors_are_refused_naming_the_field(
    fake_stub: rerank_pb2_grpc.RerankerStub, vector: list[float], model: str, field: str
) -> None:
    documents = [pb.Document(id="a", text="the river"), pb.Document(id="b", text="city", embedding=vector)]
    with pytest.raises(grpc.RpcError) as caught:
        fake_stub.Rerank(pb.RerankRequest(query="q", documents=documents, embeddings_model=model), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(field)


def test_cached_vectors_score_as_encoded_and_skip_the_model(minilm_dir: object) -> None:
    server = start_server(model=str(minilm_dir))
    try:
        for stub in stub_of(server):
            first = rerank(stub)
            assert set(sources(first).values()) == {ENCODED} and first.usage.sequences == 6
            again = rerank(stub)
            assert set(sources(again).values()) == {CACHED}
            assert again.usage.sequences == 0 and again.usage.total_tokens == 0
            assert scores(again) == scores(first)
            assert again.usage.document_tokens == first.usage.document_tokens
            # Another token cap cuts texts elsewhere: not the cached vectors' cut.
            capped = rerank(stub, max_document_tokens=4)
            assert set(sources(capped).values()) == {ENCODED}
            # Embed shares the cache: the documents are there under the document prompt.
            embedded = stub.Embed(pb.EmbedRequest(texts=PASSAGES), timeout=60)
            assert embedded.usage.sequences == 0
    finally:
        server.stop()


def test_the_cache_keeps_its_bound_and_the_recently_used() -> None:
    dimensions = 384
    entry_bytes = dimensions * 4 + ENTRY_OVERHEAD_BYTES
    cache = EmbeddingCache("bound-test", max_bytes=3 * entry_bytes)

    def entry(i: int) -> CachedVector:
        return CachedVector(np.full(dimensions, i, dtype=np.float32), 3, False)

    keys = [cache_key("", 512, f"passage {i}") for i in range(5)]
    for i in range(3):
        cache.put(keys[i], entry(i))
    assert cache.get(keys[0]) is not None  # now the most recently used
    cache.put(keys[3], entry(3))
    cache.put(keys[4], entry(4))
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None
    found = cache.get(keys[0])
    assert found is not None and float(found.vector[0]) == 0.0
    evictions = REGISTRY.get_sample_value(
        "rerank_server_embedding_cache_total", {"model": "bound-test", "event": "eviction"}
    )
    assert evictions == 2
    # The key holds the prompt and the cap: the same text under another is another entry.
    assert cache.get(cache_key("query: ", 512, "passage 0")) is None
    assert cache.get(cache_key("", 256, "passage 0")) is None
