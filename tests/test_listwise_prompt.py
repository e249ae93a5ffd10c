"""The prompt text, marker sanitising and block packing, against the spec."""

from __future__ import annotations

from reference_listwise import prompt as reference_prompt
from rerank_server.backends.listwise_prompt import block_prompt, pack_blocks, strip_markers


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
