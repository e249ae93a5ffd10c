"""Cross-encoder and bi-encoder backends: one padded batch equals one text at a time,
with the model on torch and exported to ONNX Runtime (fp32, same scores within 1e-4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerank_bridge.server.backends.base import run_plan
from rerank_bridge.server.backends.bi_encoder import BiEncoderBackend
from rerank_bridge.server.backends.cross_encoder import CrossEncoderBackend
from rerank_bridge.server.backends.encodings import run_by_length
from rerank_bridge.server.backends.registry import builtin_minilm_folder, detect_kind
from rerank_bridge.server.backends.torch_pointwise import load_bi_encoder, load_cross_encoder
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.server.domain import Document, EmbedRequest, RerankRequest

QUERY = "how do proteins fold"
DOCS = [
    "Proteins fold into shapes that decide their function.",
    "The river crosses the city.",
    "Chaperones help proteins fold correctly inside the cell, and misfolding causes disease.",
    "short",
    "Folding",
]


def request(**overrides: object) -> RerankRequest:
    settings: dict[str, object] = {
        "top_n": None,
        "instruction": "",
        "max_query_tokens": 512,
        "max_document_tokens": 512,
    }
    settings.update(overrides)
    docs = tuple(Document(str(i), t) for i, t in enumerate(DOCS))
    return RerankRequest(query=QUERY, documents=docs, **settings)  # type: ignore[arg-type]


def test_kinds_are_detected_from_the_folders(listwise_dir: Path, cross_encoder_dir: Path) -> None:
    assert detect_kind(listwise_dir) == "listwise"
    assert detect_kind(cross_encoder_dir) == "cross-encoder"
    assert detect_kind(builtin_minilm_folder()) == "bi-encoder"


def test_a_cross_encoder_saved_by_sentence_transformers_is_one(
    cross_encoder_dir: Path, tmp_path: Path
) -> None:
    # sentence-transformers 5+ writes a modules.json beside a cross-encoder too (as
    # `rerank-bridge train` and newer published rerankers do).
    from sentence_transformers.cross_encoder import CrossEncoder

    CrossEncoder(str(cross_encoder_dir), num_labels=1).save_pretrained(str(tmp_path / "saved"))
    assert (tmp_path / "saved" / "modules.json").exists()
    assert detect_kind(tmp_path / "saved") == "cross-encoder"


@pytest.fixture(scope="module", params=["torch", "onnx"])
def cross_encoder(request: pytest.FixtureRequest, cross_encoder_dir: Path) -> CrossEncoderBackend:
    onnx = "float32" if request.param == "onnx" else None
    backend = load_cross_encoder(
        cross_encoder_dir, "tiny-ce", resolve_placement("cpu", "float32"), 512, 512, onnx
    )
    assert backend.runtime == ("onnxruntime" if onnx else "torch")
    return backend


def test_cross_encoder_batch_matches_pairs_scored_alone(
    cross_encoder: CrossEncoderBackend, cross_encoder_dir: Path
) -> None:
    outcome = run_plan(cross_encoder, cross_encoder.plan_rerank(request()))
    tokenizer = AutoTokenizer.from_pretrained(str(cross_encoder_dir))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(cross_encoder_dir), dtype=torch.float32
    ).eval()
    with torch.no_grad():
        expected = [
            float(torch.sigmoid(model(**tokenizer(QUERY, d, return_tensors="pt")).logits[0, 0])) for d in DOCS
        ]
    got = [d.score for d in outcome.scored]
    assert got == pytest.approx(expected, abs=1e-4)
    assert max(got) - min(got) > 1e-3
    assert outcome.usage.sequences == len(DOCS)


def test_cross_encoder_truncates_documents_to_the_cap(cross_encoder: CrossEncoderBackend) -> None:
    outcome = run_plan(cross_encoder, cross_encoder.plan_rerank(request(max_document_tokens=4)))
    lengths = [len(ids) for ids in cross_encoder.model.truncator.encode_many(DOCS)]
    expected = [n > 4 for n in lengths]
    assert True in expected and False in expected
    assert [d.truncated for d in outcome.scored] == expected
    assert outcome.usage.truncated_documents == sum(expected)
    assert outcome.usage.document_tokens == sum(min(n, 4) for n in lengths)


@pytest.fixture(scope="module", params=["torch", "onnx"])
def minilm(request: pytest.FixtureRequest, minilm_dir: Path) -> BiEncoderBackend:
    onnx = "float32" if request.param == "onnx" else None
    return load_bi_encoder(
        minilm_dir, "all-MiniLM-L6-v2", resolve_placement("cpu", "float32"), 512, 512, onnx
    )


@pytest.fixture(scope="module")
def sentence_transformer() -> SentenceTransformer:
    return SentenceTransformer(str(builtin_minilm_folder()), device="cpu")


def test_bi_encoder_batch_matches_sentence_transformers_one_by_one(
    minilm: BiEncoderBackend, sentence_transformer: SentenceTransformer
) -> None:
    outcome = run_plan(minilm, minilm.plan_rerank(request()))
    query = sentence_transformer.encode([QUERY], convert_to_tensor=True)[0]
    expected = [
        float(
            torch.nn.functional.cosine_similarity(
                query, sentence_transformer.encode([d], convert_to_tensor=True)[0], dim=0
            )
        )
        for d in DOCS
    ]
    assert [d.score for d in outcome.scored] == pytest.approx(expected, abs=1e-4)
    # A trained model: the protein-folding passages beat the river.
    ranked = [d.index for d in outcome.ranked(None)]
    assert ranked.index(2) < ranked.index(1) and ranked.index(0) < ranked.index(1)


def test_bi_encoder_embeds_like_sentence_transformers(
    minilm: BiEncoderBackend, sentence_transformer: SentenceTransformer
) -> None:
    outcome = run_plan(minilm, minilm.plan_embed(EmbedRequest(tuple(DOCS), 512)))
    expected = sentence_transformer.encode(DOCS, convert_to_tensor=True)
    assert torch.tensor(outcome.vectors) == pytest.approx(expected, abs=1e-4)  # type: ignore[comparison-overlap]
    assert len(outcome.vectors[0]) == minilm.embed_dimensions == 384


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30),
    group_tokens=st.sampled_from([0, 1, 16, 64, 200]),
)
def test_runs_by_length_keep_every_row_in_its_place_and_groups_in_budget(
    lengths: list[int], group_tokens: int
) -> None:
    encodings = [{"input_ids": [i] * n, "attention_mask": [1] * n} for i, n in enumerate(lengths)]
    groups: list[tuple[int, int]] = []

    def first_ids(batch: dict[str, np.ndarray]) -> np.ndarray:
        groups.append(batch["input_ids"].shape)
        assert (batch["attention_mask"].sum(1) > 0).all()
        return batch["input_ids"][:, :1].astype(np.float32)

    rows = run_by_length(first_ids, encodings, pad_id=-1, group_tokens=group_tokens)
    assert rows[:, 0].tolist() == list(range(len(lengths)))  # none lost, duplicated or moved
    assert sum(n for n, _ in groups) == len(lengths)
    for count, width in groups:
        assert count == 1 or not group_tokens or count * width <= group_tokens
    if not group_tokens:
        assert len(groups) == 1
