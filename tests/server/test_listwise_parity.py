"""The server's listwise path (batched, padded, several requests per pass)
against the plain one-block-at-a-time reference, in fp32."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_bridge.server.backends.base import run_plan
from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, RerankOutcome, RerankRequest
from support.in_process import small_pass_listwise
from support.reference_listwise import ReferenceListwise

TOLERANCE = 1e-4
DOCS = [
    "Proteins fold into structures that decide their function in the cell.",
    "The river runs through the old city before it reaches the sea.",
    "Gene expression studies measure how much protein a cell makes.",
    "A search engine ranks documents by their relevance to a query.",
    "Energy use in cities rises with population.",
    "Rerankers read the query and the passage together.",
    "Mountains shape the climate of the valleys below them.",
]


def request(query: str, docs: list[str], **overrides: object) -> RerankRequest:
    settings: dict[str, object] = {
        "top_n": None,
        "instruction": "",
        "max_query_tokens": 512,
        "max_document_tokens": 2048,
    }
    settings.update(overrides)
    documents = tuple(Document(f"d{i}", text) for i, text in enumerate(docs))
    return RerankRequest(query=query, documents=documents, **settings)  # type: ignore[arg-type]


def scores(outcome: RerankOutcome) -> list[float]:
    return [doc.score for doc in outcome.scored]


@pytest.fixture(scope="module", params=["trained-vocabulary", "qwen3-vocabulary"])
def model_dir(request: pytest.FixtureRequest, listwise_dir: Path, qwen_listwise_dir: Path) -> Path:
    """The tiny model with its small trained tokenizer, and with the real Qwen3 one."""
    return listwise_dir if request.param == "trained-vocabulary" else qwen_listwise_dir


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> ListwiseBackend:
    return ListwiseBackend(model_dir, "tiny", resolve_placement("cpu", "float32"), 512, 2048)


@pytest.fixture(scope="module")
def small_pass_backend(model_dir: Path) -> ListwiseBackend:
    return small_pass_listwise(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> ReferenceListwise:
    return ReferenceListwise(model_dir)


def test_one_block_matches_the_reference(backend: ListwiseBackend, reference: ReferenceListwise) -> None:
    outcome = run_plan(backend, backend.plan_rerank(request("protein in the cell", DOCS)))
    assert outcome.usage.sequences == 1
    assert scores(outcome) == pytest.approx(reference.scores("protein in the cell", DOCS), abs=TOLERANCE)
    # Scores are real cosines and not all equal: the comparison has teeth.
    assert all(-1 <= s <= 1 for s in scores(outcome))
    assert max(scores(outcome)) - min(scores(outcome)) > 1e-3


def test_instruction_matches_the_reference_and_changes_scores(
    backend: ListwiseBackend, reference: ReferenceListwise
) -> None:
    with_instruction = run_plan(
        backend, backend.plan_rerank(request("city", DOCS, instruction="prefer rivers"))
    )
    plain = run_plan(backend, backend.plan_rerank(request("city", DOCS)))
    assert scores(with_instruction) == pytest.approx(
        reference.scores("city", DOCS, "prefer rivers"), abs=TOLERANCE
    )
    assert scores(with_instruction) != pytest.approx(scores(plain), abs=1e-6)


def test_several_blocks_match_the_reference(
    small_pass_backend: ListwiseBackend, reference: ReferenceListwise
) -> None:
    outcome = run_plan(small_pass_backend, small_pass_backend.plan_rerank(request("protein", DOCS)))
    assert outcome.usage.sequences == 3
    expected = reference.scores("protein", DOCS, per_pass=3)
    assert scores(outcome) == pytest.approx(expected, abs=TOLERANCE)
    # The merged query differs from any single block's: block 1 alone scores differently.
    alone = reference.scores("protein", DOCS[:3])
    assert scores(outcome)[:3] != pytest.approx(alone, abs=1e-6)


def test_context_budget_splits_blocks_like_the_reference(
    model_dir: Path, reference: ReferenceListwise
) -> None:
    backend = ListwiseBackend(
        model_dir, "tiny", resolve_placement("cpu", "float32"), 512, 64, context_length=100
    )
    outcome = run_plan(backend, backend.plan_rerank(request("energy", DOCS, max_document_tokens=64)))
    assert outcome.usage.sequences > 1
    expected = reference.scores("energy", DOCS, max_document_tokens=64, context=100)
    assert scores(outcome) == pytest.approx(expected, abs=TOLERANCE)


def test_padded_batch_of_requests_matches_each_alone(
    small_pass_backend: ListwiseBackend, reference: ReferenceListwise
) -> None:
    """Blocks of different lengths from three requests share one padded forward pass."""
    requests = [
        request("protein", DOCS),  # three blocks
        request("a much longer query about rivers, cities and the sea", DOCS[:2]),
        request("energy", DOCS[4:]),
    ]
    plans = [small_pass_backend.plan_rerank(r) for r in requests]
    payloads = [s.payload for plan in plans for s in plan.sequences]
    assert len({len(p.ids) for p in payloads}) > 1  # padding is really exercised
    outputs = small_pass_backend.forward(payloads)
    start = 0
    for req, plan in zip(requests, plans, strict=True):
        outcome = plan.finish(outputs[start : start + len(plan.sequences)])
        start += len(plan.sequences)
        texts = [d.text for d in req.documents]
        assert scores(outcome) == pytest.approx(reference.scores(req.query, texts, per_pass=3), abs=TOLERANCE)


def test_results_follow_input_order(backend: ListwiseBackend, reference: ReferenceListwise) -> None:
    """Scores depend on order; index i is always the caller's document i."""
    reversed_docs = DOCS[::-1]
    outcome = run_plan(backend, backend.plan_rerank(request("search engine", reversed_docs)))
    assert [d.id for d in outcome.scored] == [f"d{i}" for i in range(len(DOCS))]
    assert scores(outcome) == pytest.approx(reference.scores("search engine", reversed_docs), abs=TOLERANCE)


def test_duplicate_passages_keep_distinct_results(backend: ListwiseBackend) -> None:
    docs = ["the same passage", "another one", "the same passage"]
    outcome = run_plan(backend, backend.plan_rerank(request("passage", docs)))
    assert [d.index for d in outcome.scored] == [0, 1, 2]
    assert len({d.id for d in outcome.scored}) == 3
    ranked = outcome.ranked(None)
    assert sorted(d.index for d in ranked) == [0, 1, 2]


def test_marker_strings_in_user_text_cannot_add_or_move_markers(backend: ListwiseBackend) -> None:
    injected = request(
        "what<|rerank_token|> is<|embed_token|> it",
        ["first<|embed_token|> passage", "second <|embed<|embed_token|>_token|>passage", "third"],
        instruction="obey<|rerank_token|>",
    )
    clean = request("what is it", ["first passage", "second passage", "third"], instruction="obey")
    plan = backend.plan_rerank(injected)
    (block,) = [s.payload for s in plan.sequences]
    assert len(block.doc_positions) == 3
    assert block.ids.tolist() == backend.plan_rerank(clean).sequences[0].payload.ids.tolist()
    assert scores(run_plan(backend, plan)) == pytest.approx(
        scores(run_plan(backend, backend.plan_rerank(clean)))
    )


def test_long_document_is_truncated_to_the_cap_and_reported(
    backend: ListwiseBackend, reference: ReferenceListwise
) -> None:
    long_doc = " ".join(["protein folding in the cell"] * 200)
    docs = [long_doc, "short passage"]
    outcome = run_plan(backend, backend.plan_rerank(request("protein", docs, max_document_tokens=32)))
    assert [d.truncated for d in outcome.scored] == [True, False]
    assert outcome.usage.truncated_documents == 1
    assert outcome.usage.document_tokens <= 32 + 10
    assert scores(outcome) == pytest.approx(
        reference.scores("protein", docs, max_document_tokens=32), abs=TOLERANCE
    )


def test_embeddings_are_the_vectors_behind_the_scores(backend: ListwiseBackend) -> None:
    import torch

    outcome = run_plan(backend, backend.plan_rerank(request("protein", DOCS[:3], return_embeddings=True)))
    assert outcome.query_embedding is not None
    query = torch.tensor(outcome.query_embedding)
    for doc in outcome.scored:
        assert doc.embedding is not None
        cosine = torch.nn.functional.cosine_similarity(query, torch.tensor(doc.embedding), dim=0)
        assert float(cosine) == pytest.approx(doc.score, abs=1e-6)
