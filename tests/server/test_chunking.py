"""Chunked scoring of long documents (rerank_bridge/server/chunking.py): windows along
the model's own tokens, scores equal to the spec's reference run on the chunk
list, passages whose offsets slice exactly the text that was scored, and bad
chunking settings refused with the field named."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.search import AsyncRerankClient, ChunkingSettings, RerankClient, Reranking
from rerank_bridge.server import chunking, validation
from rerank_bridge.server.backends.base import Backend, Plan, run_plan
from rerank_bridge.server.backends.bi_encoder import BiEncoderBackend
from rerank_bridge.server.backends.cross_encoder import CrossEncoderBackend
from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.backends.registry import builtin_minilm_folder
from rerank_bridge.server.backends.torch_pointwise import load_bi_encoder, load_cross_encoder
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Chunking, Document, RerankOutcome, RerankRequest
from rerank_bridge.server.validation import RequestLimits
from support.in_process import small_pass_listwise, start_server
from support.reference_listwise import ReferenceListwise

TOLERANCE = 1e-4
SENTENCES = [
    "Proteins fold into structures that decide their function in the cell.",
    "The river runs through the old city before it reaches the sea.",
    "Gene expression studies measure how much protein a cell makes.",
    "Energy use in cities rises with population.",
    "Mountains shape the climate of the valleys below them.",
]
LONG = " ".join(SENTENCES * 3)
SCRIPTS = {
    "ascii": LONG,
    "cjk": "蛋白质折叠成决定其功能的结构。河流穿过古老的城市流入大海。" * 4,
    "arabic": "تطوى البروتينات في بنى تحدد وظيفتها في الخلية. يجري النهر عبر المدينة القديمة. " * 4,
    "emoji": "Rivers 🌊 run to the sea 🏙️ past the city 👩🏽‍🔬 where proteins 🧬 fold. " * 4,
    "combining": "Cafe\u0301 na\u0308ive re\u0301sume\u0301 — the pro\u0302tein folds in the ce\u0300ll. "
    * 4,
}


def request(query: str, texts: list[str], chunks: Chunking | None, **overrides: Any) -> RerankRequest:
    settings: dict[str, Any] = {
        "top_n": None,
        "instruction": "",
        "max_query_tokens": 512,
        "max_document_tokens": 2048,
        "chunking": chunks,
        "return_passages": True,
    }
    settings.update(overrides)
    documents = tuple(Document(f"d{i}", text) for i, text in enumerate(texts))
    return RerankRequest(query=query, documents=documents, **settings)


class Recording:
    """Wraps a backend and keeps the documents of every request it plans."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.seen: list[str] = []
        self.original = backend.plan_rerank

    def __enter__(self) -> Recording:
        def plan_rerank(inner: RerankRequest) -> Plan[RerankOutcome]:
            self.seen.extend(document.text for document in inner.documents)
            return self.original(inner)

        self.backend.plan_rerank = plan_rerank  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.backend.plan_rerank = self.original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def listwise(listwise_dir: Path) -> ListwiseBackend:
    return ListwiseBackend(listwise_dir, "tiny", resolve_placement("cpu", "float32"), 512, 2048)


@pytest.fixture(scope="module")
def small_pass(listwise_dir: Path) -> ListwiseBackend:
    return small_pass_listwise(listwise_dir)


@pytest.fixture(scope="module")
def reference(listwise_dir: Path) -> ReferenceListwise:
    return ReferenceListwise(listwise_dir)


@pytest.fixture(scope="module")
def minilm() -> BiEncoderBackend:
    return load_bi_encoder(
        builtin_minilm_folder(), "all-MiniLM-L6-v2", resolve_placement("cpu", "float32"), 512, 256
    )


@pytest.fixture(scope="module")
def cross_encoder(cross_encoder_dir: Path) -> CrossEncoderBackend:
    return load_cross_encoder(cross_encoder_dir, "tiny-ce", resolve_placement("cpu", "float32"), 512, 256)


@given(
    st.lists(st.sampled_from(["word", "end.", "x", "long-word!"]), min_size=0, max_size=120),
    st.integers(1, 20),
    st.data(),
)
def test_windows_cover_every_token_in_order_within_size_and_overlap(
    words: list[str], size: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    text = " ".join(words)
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    found = chunking.windows(spans, text, size, overlap, limit=10_000)
    assert [token for window in found for token in window][: len(spans)] or not spans
    covered = sorted({token for window in found for token in window})
    assert covered == list(range(len(spans)))
    for before, after in itertools.pairwise(found):
        assert after.start > before.start  # always moves on
        assert before.stop - after.start <= overlap  # shares at most `overlap` tokens
    assert all(1 <= len(window) <= size for window in found)


def test_a_window_ends_after_a_sentence_when_one_ends_in_its_last_quarter() -> None:
    words = ["a"] * 7 + ["b."] + ["c"] * 10
    text = " ".join(words)
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    assert chunking.windows(spans, text, 10, 0, 100)[0] == range(0, 8)  # "b." is the 8th token


@pytest.mark.parametrize("blocks", ["one block", "several blocks"])
def test_listwise_chunk_scores_equal_the_reference_on_the_chunk_list(
    listwise: ListwiseBackend, small_pass: ListwiseBackend, reference: ReferenceListwise, blocks: str
) -> None:
    backend = listwise if blocks == "one block" else small_pass
    settings = Chunking(size=24, overlap=6, aggregation="max", max_chunks=16)
    texts = [LONG, SENTENCES[3], SENTENCES[0] + " " + SENTENCES[4]]
    with Recording(backend) as recording:
        outcome = run_plan(
            backend, chunking.plan(backend, request("protein in the cell", texts, settings), 2000)
        )
    chunk_texts = recording.seen
    assert len(chunk_texts) > len(texts)
    expected = reference.scores(
        "protein in the cell",
        chunk_texts,
        max_document_tokens=settings.size + chunking.EDGE_TOKENS,
        per_pass=3 if blocks == "several blocks" else 125,
    )
    assert outcome.usage.chunks == len(chunk_texts)
    assert outcome.usage.sequences == (1 if blocks == "one block" else -(-len(chunk_texts) // 3))
    by_text = dict(zip(chunk_texts, expected, strict=False))
    for doc in outcome.scored:
        assert doc.passage is not None
        passage_text = texts[doc.index][doc.passage.start : doc.passage.end]
        assert doc.passage.score == pytest.approx(by_text[passage_text], abs=TOLERANCE)
        assert doc.score == pytest.approx(doc.passage.score, abs=1e-7)  # max aggregation
    # The chunks of each document in text order, documents in caller order.
    chunks, _ = chunking.cut_into_chunks(backend, texts, settings)
    assert [texts[c.document][c.start : c.end] for c in chunks] == chunk_texts
    assert [(c.document, c.start) for c in chunks] == sorted((c.document, c.start) for c in chunks)


def test_mean_aggregation_averages_the_chunks(listwise: ListwiseBackend) -> None:
    settings = Chunking(size=24, overlap=0, aggregation="mean", max_chunks=16)
    with Recording(listwise) as recording:
        mean = run_plan(listwise, chunking.plan(listwise, request("river", [LONG], settings), 2000))
    per_chunk = run_plan(
        listwise,
        chunking.plan(listwise, request("river", [LONG], replace(settings, aggregation="max")), 2000),
    )
    assert len(recording.seen) > 1
    assert mean.scored[0].score < per_chunk.scored[0].score
    assert mean.scored[0].passage == per_chunk.scored[0].passage


def test_documents_that_fit_score_the_same_with_chunking_on_and_off(listwise: ListwiseBackend) -> None:
    settings = Chunking(size=64, overlap=8, aggregation="max", max_chunks=16)
    on = run_plan(listwise, chunking.plan(listwise, request("city", SENTENCES, settings), 2000))
    off = run_plan(listwise, chunking.plan(listwise, request("city", SENTENCES, None), 2000))
    assert on.usage.chunks == len(SENTENCES)
    assert [d.score for d in on.scored] == pytest.approx([d.score for d in off.scored], abs=1e-6)
    assert [d.passage for d in on.scored] == [d.passage for d in off.scored]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("model", ["listwise", "minilm", "cross-encoder"])
def test_passages_slice_exactly_the_scored_chunk(
    script: str,
    model: str,
    listwise: ListwiseBackend,
    minilm: BiEncoderBackend,
    cross_encoder: CrossEncoderBackend,
) -> None:
    backend: Backend = {"listwise": listwise, "minilm": minilm, "cross-encoder": cross_encoder}[model]
    text = SCRIPTS[script]
    settings = Chunking(size=12, overlap=3, aggregation="max", max_chunks=64)
    with Recording(backend) as recording:
        outcome = run_plan(
            backend, chunking.plan(backend, request("the river and the city", [text], settings), 2000)
        )
    (doc,) = outcome.scored
    assert doc.passage is not None and len(recording.seen) > 1
    assert text[doc.passage.start : doc.passage.end] in recording.seen
    assert not doc.truncated
    # Each chunk starts and ends on the text's own token boundaries.
    ((spans, _),) = backend.token_spans([text], 10_000)
    starts, ends = {s for s, _ in spans}, {e for _, e in spans}
    chunks, _ = chunking.cut_into_chunks(backend, [text], settings)
    assert all(c.start in starts and c.end in ends for c in chunks)
    assert [text[c.start : c.end] for c in chunks] == recording.seen


def test_text_past_the_last_chunk_marks_the_document_truncated(listwise: ListwiseBackend) -> None:
    settings = Chunking(size=16, overlap=0, aggregation="max", max_chunks=2)
    outcome = run_plan(
        listwise, chunking.plan(listwise, request("river", [LONG, "Cities grow."], settings), 2000)
    )
    assert [d.truncated for d in outcome.scored] == [True, False]
    assert outcome.usage.chunks == 3 and outcome.usage.truncated_documents == 1


def test_without_chunking_the_passage_is_what_the_model_read(listwise: ListwiseBackend) -> None:
    outcome = run_plan(
        listwise,
        chunking.plan(listwise, request("river", [LONG, "The river. "], None, max_document_tokens=20), 2000),
    )
    long_doc, short = outcome.scored
    assert long_doc.truncated and long_doc.passage is not None and 0 < long_doc.passage.end < len(LONG)
    assert not short.truncated and short.passage is not None
    assert (short.passage.start, short.passage.end) == (0, len("The river. "))
    assert long_doc.passage.score == long_doc.score


@pytest.fixture(scope="module")
def chunk_server_address() -> Iterator[str]:
    server = start_server(
        model="fake",
        max_documents=5,
        max_document_tokens=64,
        max_chunks_per_document=4,
        max_chunks_per_request=6,
    )
    yield server.address
    server.stop()


@pytest.fixture(scope="module")
def chunk_stub(chunk_server_address: str) -> Iterator[rerank_pb2_grpc.RerankerStub]:
    with grpc.insecure_channel(chunk_server_address) as channel:
        yield rerank_pb2_grpc.RerankerStub(channel)


def rerank_call(long_documents: int = 1, **chunking_fields: Any) -> pb.RerankRequest:
    words = " ".join(f"w{i}" for i in range(40))
    documents = [pb.Document(id=f"long{i}", text=words) for i in range(long_documents)]
    return pb.RerankRequest(
        query="w30 w31",
        documents=[*documents, pb.Document(id="b", text="w3 only")],
        chunking=pb.Chunking(enabled=True, **chunking_fields),
        return_passages=True,
    )


def test_chunked_rerank_over_grpc_returns_the_best_passage(chunk_stub: rerank_pb2_grpc.RerankerStub) -> None:
    response = chunk_stub.Rerank(rerank_call(size=10, overlap=0), timeout=10)
    assert response.usage.chunks == 5
    best = {r.id: r for r in response.results}["long0"]
    text = rerank_call().documents[0].text
    assert "w30" in text[best.best_passage.start : best.best_passage.end]
    assert best.best_passage.score == best.score


BAD = {
    "size 0": ({"size": 0}, "chunking.size"),
    "size over the cap": ({"size": 65}, "chunking.size"),
    "overlap equal to size": ({"size": 8, "overlap": 8}, "chunking.overlap"),
    "negative overlap": ({"size": 8, "overlap": -1}, "chunking.overlap"),
    "unknown aggregation": ({"size": 8, "aggregation": "median"}, "chunking.aggregation"),
    "max_chunks over the limit": ({"size": 8, "max_chunks": 5}, "chunking.max_chunks"),
    # 3 documents of 4 chunks (the per-document limit) and one of 1: 13 chunks, over 6.
    "too many chunks in the request": ({"long_documents": 3, "size": 4, "overlap": 0}, "chunking.max_chunks"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_chunking_is_refused_naming_the_field(
    chunk_stub: rerank_pb2_grpc.RerankerStub, case: str
) -> None:
    fields, field = BAD[case]
    with pytest.raises(grpc.RpcError) as refused:
        chunk_stub.Rerank(rerank_call(**fields), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(field), refused.value.details()
    assert chunk_stub.Rerank(rerank_call(size=10), timeout=10).results  # still serving


def test_chunking_with_embeddings_is_refused(chunk_stub: rerank_pb2_grpc.RerankerStub) -> None:
    call = rerank_call(size=10)
    call.return_embeddings = True
    with pytest.raises(grpc.RpcError) as refused:
        chunk_stub.Rerank(call, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("return_embeddings")


def test_the_clients_send_chunking_and_read_the_passages(chunk_server_address: str) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    documents = [("long", words), ("short", "w3 only")]
    settings = ChunkingSettings(size=10, overlap=0)
    with RerankClient(chunk_server_address) as client:
        synced = client.rerank("w30 w31", documents, chunking=settings, return_passages=True)
        plain = client.rerank("w30 w31", documents)

    async def call() -> Reranking:
        client = AsyncRerankClient(chunk_server_address)
        try:
            return await client.rerank("w30 w31", documents, chunking=settings, return_passages=True)
        finally:
            await client.close()

    for reranking in (synced, asyncio.run(call())):
        best = reranking.documents[0]
        assert best.id == "long" and best.passage is not None
        assert words[best.passage.start : best.passage.end] == "w30 w31 w32 w33 w34 w35 w36 w37 w38 w39"
        assert reranking.usage.chunks == 5
    assert all(doc.passage is None for doc in plain.documents)


def test_the_servers_default_chunking_applies_and_gives_way_to_a_smaller_cap() -> None:
    limits = RequestLimits(100, 512, 256, 10, chunk_size=128, chunk_overlap=32)
    message = pb.RerankRequest(query="q", documents=[pb.Document(id="a", text="t")])
    assert validation.chunking(message, limits, 256) == Chunking(128, 32, "max", 16)
    assert validation.chunking(message, limits, 40) == Chunking(40, 32, "max", 16)
    message.chunking.enabled = False
    assert validation.chunking(message, limits, 256) is None
    assert validation.chunking(pb.RerankRequest(query="q"), replace(limits, chunk_size=0), 256) is None
