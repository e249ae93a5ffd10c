"""The jina-reranker-v3 prompt: marker sanitising, block layout and packing.

Pure text and integer logic (no torch), so it can be read against the spec
(shared/specs/listwise-model.md) line by line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

DOC_MARKER = "<|embed_token|>"
QUERY_MARKER = "<|rerank_token|>"
MARKERS = (DOC_MARKER, QUERY_MARKER)

# The reference packs at most this many documents into one forward pass.
MAX_DOCUMENTS_PER_PASS = 125

SYSTEM_PROMPT = (
    "You are a search relevance expert who can determine a ranking of the passages based on how "
    "relevant they are to the query. If the query is a question, how relevant a passage is depends "
    "on how well it answers the question. If not, try to analyze the intent of the query and assess "
    "how well each passage satisfies the intent. If an instruction is provided, you should follow "
    "the instruction when determining the ranking."
)


def strip_markers(text: str) -> str:
    """Removes both marker strings until none is left.

    One pass is not enough: removing the inner marker of
    "<|embed<|embed_token|>_token|>" would assemble a new one.
    """
    previous = None
    while previous != text:
        previous = text
        for marker in MARKERS:
            text = text.replace(marker, "")
    return text


def prompt_frame(query: str, count: int, instruction: str = "") -> tuple[list[str], str]:
    """The fixed text of a block of `count` documents, cut at the documents: the text
    before each document, and the tail after the last document's marker. The prompt
    is the prefixes and documents interleaved, each document followed by its marker;
    inputs must already be sanitised and truncated."""
    if count < 1:
        raise ValueError("a block holds at least one document")
    header = (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\nI will provide you with {count} passages, each indicated by a "
        f"numerical identifier. Rank the passages based on their relevance to query: {query}\n"
    )
    if instruction:
        header += f"<instruct>\n{instruction}\n</instruct>\n"
    prefixes = [header + passage_opening(0)] + [
        f"\n</passage>\n{passage_opening(i)}" for i in range(1, count)
    ]
    tail = (
        f"\n</passage>\n<query>\n{query}{QUERY_MARKER}\n</query><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    return prefixes, tail


def passage_opening(index: int) -> str:
    return f'<passage id="{index}">\n'


def block_prompt(query: str, documents: Sequence[str], instruction: str = "") -> str:
    """The full prompt of one block; inputs must already be sanitised and truncated."""
    prefixes, tail = prompt_frame(query, len(documents), instruction)
    return (
        "".join(f"{prefix}{doc}{DOC_MARKER}" for prefix, doc in zip(prefixes, documents, strict=True)) + tail
    )


def splices_cleanly(text: str) -> bool:
    """Whether a document's own tokens, placed after its prefix, are the tokens the
    whole prompt would give there.

    Every prefix ends in a newline after punctuation (`">\n`). The byte-level
    pre-tokenizers of Qwen and GPT-2 end a pre-token at that newline unless the
    next character is whitespace (`\n\n` or `\n ` may form one token). A
    leading combining mark is left out too, as the one thing Unicode
    normalisation joins to what precedes it (rare text: it costs only a second
    tokenisation). The document's end needs no rule: its marker is an added
    token, where the tokenizer splits the text before anything else.
    tests/server/test_listwise_prompt.py checks this against whole-prompt tokenisation
    with both tokenizers (and fails when the whitespace rule is dropped).
    """
    if not text:
        return True
    first = text[0]
    return not first.isspace() and not unicodedata.category(first).startswith("M")


def pack_blocks(
    document_tokens: Sequence[int],
    query_tokens: int,
    context_length: int,
    max_document_tokens: int,
    max_documents_per_pass: int = MAX_DOCUMENTS_PER_PASS,
) -> list[range]:
    """Splits documents, in input order, into blocks that each fit one pass.

    A block takes documents while it holds fewer than `max_documents_per_pass`
    and its remaining token budget (context minus the query's two copies)
    stays above the per-document cap, so the next document is sure to fit.
    """
    budget = context_length - 2 * query_tokens
    blocks: list[range] = []
    start = 0
    remaining = budget
    for i, tokens in enumerate(document_tokens):
        full = i - start >= max_documents_per_pass or remaining <= max_document_tokens
        if i > start and full:
            blocks.append(range(start, i))
            start, remaining = i, budget
        remaining -= tokens
    if start < len(document_tokens):
        blocks.append(range(start, len(document_tokens)))
    return blocks
