"""Truncation in every backend: a query over its cap is cut (never an error), a
document over the model's own limit reports `truncated` and the tokens the
model read, and a 5 MB document reaches the tokenizer only as a head bounded
by the cap (the milliseconds are measured by bench/truncation_cost.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rerank_bridge.server.backends.base import Backend, run_plan
from rerank_bridge.server.backends.bi_encoder import BiEncoderBackend
from rerank_bridge.server.backends.cross_encoder import CrossEncoderBackend
from rerank_bridge.server.backends.fake import FakeBackend
from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.backends.registry import builtin_minilm_folder
from rerank_bridge.server.backends.torch_pointwise import load_bi_encoder, load_cross_encoder
from rerank_bridge.server.backends.truncation import Truncator
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, EmbedRequest, RerankOutcome, RerankRequest

FIVE_MB = "protein folding in the cell " * (5 * 1024 * 1024 // 28)
LONG = "protein folding in the cell " * 400  # ~2,000 tokens
CAP = 2048  # the server's default document cap


def rerank(
    backend: Backend, query: str, docs: list[str], query_cap: int = 512, doc_cap: int = CAP
) -> RerankOutcome:
    request = RerankRequest(
        query=query,
        documents=tuple(Document(str(i), text) for i, text in enumerate(docs)),
        top_n=None,
        instruction="",
        max_query_tokens=query_cap,
        max_document_tokens=doc_cap,
    )
    return run_plan(backend, backend.plan_rerank(request))


def count(truncator: Truncator, text: str) -> int:
    return len(truncator.backend.encode(text, add_special_tokens=False).ids)


class ReadLog:
    """Wraps a truncator's tokenizer call to record how many characters it read."""

    def __init__(self, truncator: Truncator) -> None:
        self.longest = 0
        original = truncator.backend.encode_batch

        def encode_batch(texts: list[str], **kwargs: Any) -> Any:
            self.longest = max([self.longest, *(len(t) for t in texts)])
            return original(texts, **kwargs)

        self.truncator, self.original = truncator, truncator.backend
        truncator.backend = _Recording(truncator.backend, encode_batch)  # type: ignore[assignment]

    def restore(self) -> None:
        self.truncator.backend = self.original


class _Recording:
    def __init__(self, inner: Any, encode_batch: Any) -> None:
        self._inner, self.encode_batch = inner, encode_batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture(scope="module")
def minilm() -> BiEncoderBackend:
    return load_bi_encoder(
        builtin_minilm_folder(), "all-MiniLM-L6-v2", resolve_placement("cpu", "float32"), 512, CAP
    )


@pytest.fixture(scope="module")
def cross_encoder(cross_encoder_dir: Path) -> CrossEncoderBackend:
    return load_cross_encoder(cross_encoder_dir, "tiny-ce", resolve_placement("cpu", "float32"), 512, CAP)


@pytest.fixture(scope="module")
def listwise(listwise_dir: Path) -> ListwiseBackend:
    return ListwiseBackend(listwise_dir, "tiny-listwise", resolve_placement("cpu", "float32"), 512, CAP)


def test_bi_encoder_reports_what_the_model_read(minilm: BiEncoderBackend) -> None:
    """MiniLM reads 256 tokens with its two special ones: a 2,000-token document is cut there."""
    outcome = rerank(minilm, LONG, [LONG, "short passage"])
    limit = minilm.model.max_length - 2
    assert [d.truncated for d in outcome.scored] == [True, False]
    assert outcome.usage.query_tokens == limit
    assert outcome.usage.document_tokens == limit + count(minilm.truncator, "short passage")
    embedded = run_plan(minilm, minilm.plan_embed(EmbedRequest((LONG,), CAP)))
    assert embedded.usage.truncated_documents == 1 and embedded.usage.document_tokens == limit


def test_cross_encoder_cuts_a_long_query_and_the_document_gives_way(
    cross_encoder: CrossEncoderBackend,
) -> None:
    """A query past the model's 512 tokens is cut, not an error; the document gets what is left."""
    outcome = rerank(cross_encoder, LONG, [LONG, "short"], query_cap=CAP)
    room = cross_encoder.model.max_length - cross_encoder.model.truncator.special_tokens(pair=True)
    assert outcome.usage.query_tokens == room - 1
    # One token each is all the query leaves: "short" is cut too if it is more than one.
    assert [d.truncated for d in outcome.scored] == [True, count(cross_encoder.truncator, "short") > 1]
    assert outcome.usage.document_tokens == 2
    # Within the model's limit, a document over the request's cap reports that cap.
    capped = rerank(cross_encoder, "folding", [LONG], doc_cap=100)
    assert capped.scored[0].truncated and capped.usage.document_tokens == 100
    # A document cut only by the model's own length says so too, with the tokens it kept.
    model_cut = rerank(cross_encoder, "folding", [LONG])
    assert model_cut.scored[0].truncated
    assert model_cut.usage.document_tokens == room - model_cut.usage.query_tokens


def test_listwise_cuts_to_the_cap_as_the_spec_does(listwise: ListwiseBackend) -> None:
    outcome = rerank(listwise, LONG, [LONG, "short"], query_cap=64, doc_cap=128)
    assert outcome.usage.query_tokens == 64
    assert [d.truncated for d in outcome.scored] == [True, False]
    assert outcome.usage.document_tokens == 128 + count(listwise.truncator, "short")


def test_fake_backend_counts_words_the_same_way() -> None:
    fake = FakeBackend("", 512, 100)
    outcome = rerank(fake, "protein", [LONG, "protein"], doc_cap=100)
    assert [d.truncated for d in outcome.scored] == [True, False]
    assert outcome.usage.document_tokens == 101


@pytest.mark.parametrize("name", ["minilm", "cross_encoder", "listwise"])
def test_a_five_megabyte_document_reaches_the_tokenizer_only_as_a_bounded_head(
    name: str, request: pytest.FixtureRequest
) -> None:
    backend = request.getfixturevalue(name)
    log = ReadLog(backend.truncator)
    try:
        outcome = rerank(backend, "protein folding", [FIVE_MB])
    finally:
        log.restore()
    assert outcome.scored[0].truncated
    assert log.longest <= backend.truncator.char_bound(CAP) < len(FIVE_MB) // 50


def test_the_head_keeps_every_token_within_the_cap(minilm: BiEncoderBackend) -> None:
    """The bound is safe: the first `cap` tokens of the head are those of the whole text."""
    truncator = minilm.truncator
    text = " ".join(f"w{i}ordinary-compound_word{i * 7919 % 1000}" for i in range(3000))
    whole = truncator.backend.encode(text, add_special_tokens=False).ids
    for cap in (1, 10, 100, 500):
        (cut,) = truncator.cut([text], cap)
        assert cut.ids == whole[:cap] and cut.tokens == cap and cut.truncated
