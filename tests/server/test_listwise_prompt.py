"""The prompt text, marker sanitising and block packing, against the spec; and the
lean path that assembles prompt ids from pieces, against whole-prompt tokenisation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank_bridge.server.backends.listwise import ListwiseBackend
from rerank_bridge.server.backends.listwise_prompt import block_prompt, pack_blocks, strip_markers
from rerank_bridge.server.devices import resolve_placement
from support.reference_listwise import prompt as reference_prompt


def test_prompt_matches_the_spec_template() -> None:
    docs = ["first passage", "second passage"]
    assert block_prompt("what is x", docs) == reference_prompt("what is x", docs, "")
    assert block_prompt("what is x", docs, "prefer reviews") == reference_prompt(
        "what is x", docs, "prefer reviews"
    )


def test_prompt_numbers_passages_from_zero_and_ends_with_the_query_marker() -> None:
    text = block_prompt("q", ["a", "b", "c"])
    assert '<passage id="0">\na<|embed_token|>\n</passage>\n<passage id="1">' in text
    assert '<passage id="3">' not in text
    assert "I will provide you with 3 passages" in text
    assert text.count("<|rerank_token|>") == 1
    assert text.endswith(
        "q<|rerank_token|>\n</query><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert "<instruct>" not in text


def test_strip_markers_removes_nested_markers_that_one_pass_would_assemble() -> None:
    assert strip_markers("a<|embed<|embed_token|>_token|>b") == "ab"
    assert strip_markers("x<|rerank_<|embed_token|>token|>y<|rerank_token|>") == "xy"
    assert strip_markers("plain <|im_end|> text") == "plain <|im_end|> text"


def test_packing_keeps_one_block_when_everything_fits() -> None:
    assert pack_blocks([100] * 50, query_tokens=20, context_length=131072, max_document_tokens=2048) == [
        range(50)
    ]


def test_packing_caps_documents_per_pass() -> None:
    blocks = pack_blocks([10] * 300, query_tokens=5, context_length=131072, max_document_tokens=2048)
    assert blocks == [range(0, 125), range(125, 250), range(250, 300)]


def test_packing_starts_a_block_when_the_budget_left_is_not_above_the_cap() -> None:
    # budget 1000 - 2*50 = 900; cap 300: after 600 tokens 300 are left, not above the cap.
    blocks = pack_blocks(
        [200, 200, 200, 200, 200], query_tokens=50, context_length=1000, max_document_tokens=300
    )
    assert blocks == [range(0, 3), range(3, 5)]
    # Every document lands in exactly one block, in input order.
    assert [i for block in blocks for i in block] == list(range(5))


# Characters that stress the seams between the prompt's pieces: whitespace and
# newlines of every kind, the template's own punctuation, combining marks
# (NFC), Hangul jamo, CJK, emoji, digits and the special tokens' text.
SEAM_TEXT = st.lists(
    st.sampled_from(
        [
            *" \t\n\r\x0b\x0c\u00a0\u2028\u3000",
            *"<>\"=/|_.,:;!?'()-",
            *"\u0301\u0308\u1100\u1161",
            *"aZé日本語🙂0189",
            *("<|im_end|>", "<|embed_token|>", "</passage>", "\n</passage>\n", "word", " word"),
        ]
    ),
    max_size=16,
).map("".join)


@pytest.fixture(scope="module", params=["trained-vocabulary", "qwen3-vocabulary"])
def listwise(request: pytest.FixtureRequest, listwise_dir: Path, qwen_listwise_dir: Path) -> ListwiseBackend:
    folder = listwise_dir if request.param == "trained-vocabulary" else qwen_listwise_dir
    return ListwiseBackend(folder, "tiny", resolve_placement("cpu", "float32"), 512, 2048)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=SEAM_TEXT,
    documents=st.lists(SEAM_TEXT, min_size=1, max_size=5),
    instruction=SEAM_TEXT,
    cap=st.sampled_from([2, 5, 2048]),
)
def test_assembled_prompt_ids_equal_tokenising_the_whole_prompt(
    listwise: ListwiseBackend, query: str, documents: list[str], instruction: str, cap: int
) -> None:
    """The lean path (each document's own ids spliced between cached pieces) gives
    exactly the ids of the whole prompt, markers where the whole prompt has them."""
    query, instruction = strip_markers(query), strip_markers(instruction)
    prepared = listwise._prompt_documents([strip_markers(d) for d in documents], cap)
    block = listwise._block_input(query, prepared, instruction)
    whole = listwise.truncator.backend.encode(
        block_prompt(query, [d.text for d in prepared], instruction), add_special_tokens=False
    ).ids
    assert block.ids.tolist() == whole
    assert block.doc_positions == [i for i, t in enumerate(whole) if t == listwise.doc_marker_id]
    assert [block.query_position] == [i for i, t in enumerate(whole) if t == listwise.query_marker_id]


def test_most_documents_are_spliced_not_tokenised_again(qwen_listwise_dir: Path) -> None:
    """Plain text is spliced; text that starts with whitespace or a combining mark,
    and cut text, goes through the tokenizer with its prefix."""
    backend = ListwiseBackend(qwen_listwise_dir, "tiny", resolve_placement("cpu", "float32"), 512, 2048)
    texts = [
        "A plain passage.",
        "(punctuation first)",
        " leading space",
        "\nnewline",
        "\u0301mark",
        "x " * 50,
    ]
    prepared = backend._prompt_documents(texts, 20)
    assert [d.ids is not None for d in prepared] == [True, True, False, False, False, False]
    assert prepared[-1].truncated
