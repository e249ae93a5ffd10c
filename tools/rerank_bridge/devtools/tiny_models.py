"""Builds tiny random models in the published Hugging Face layouts, for tests
and CPU benchmarks (no weights can be downloaded here, and none are committed).

    python -m rerank_bridge.devtools.tiny_models OUT_DIR

writes OUT_DIR/listwise (a Qwen3 decoder saved like jina-reranker-v3: `model.*`
backbone keys, `projector.0/2` weights, architectures JinaForRanking, a BPE
tokenizer with the two marker tokens) and OUT_DIR/cross-encoder (a BERT
sequence classifier). The server loads them through its real loaders.
Weights are random but seeded, so every build gives the same model.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3Model,
)

from rerank_bridge.server.backends.listwise_prompt import DOC_MARKER, QUERY_MARKER, block_prompt

WORDS = tuple(
    """the a of and to in is was for on with as by at from that which protein cell gene study results
    patients effect risk data model search query document passage ranking relevance engine index vector
    score first stage rerank answer question water energy city river mountain history language science
    network learning evidence method analysis increase decrease treatment trial""".split()
)


def _corpus(seed: int = 0, lines: int = 3000) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(lines):
        yield " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))).capitalize() + "."
    # The prompt itself, so its fixed parts become few tokens as in the real vocabulary.
    for _ in range(50):
        yield block_prompt("query", ["passage one", "passage two"], "instruction")


def _bpe_tokenizer(special: list[str], vocab_size: int = 1000) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    return tokenizer


TINY_QWEN3: dict[str, Any] = {
    # Wider than the default 0.02 so that random documents get clearly different scores.
    "initializer_range": 0.1,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
# The jina-reranker-v3 backbone (Qwen3-0.6B), for speed measurements with random weights.
QWEN3_0_6B: dict[str, Any] = {
    "initializer_range": 0.02,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
}


def build_listwise(
    folder: Path,
    seed: int = 0,
    context_length: int = 4096,
    shape: dict[str, Any] | None = None,
    weights_dtype: torch.dtype = torch.float32,
    vocabulary: str = "trained",
) -> Path:
    """`shape` overrides the tiny backbone (QWEN3_0_6B gives the real model's size;
    the small trained tokenizer's ids stay valid in its larger vocabulary).
    `vocabulary`: "trained" (a 1,000-token BPE trained here, quick to build) or
    "qwen3" (the real Qwen3 tokenizer from qwen_vocab.py, with the real model's
    151,936 embedding rows), where prompt lengths and tokenising costs must be
    the real ones."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    if vocabulary == "qwen3":
        from rerank_bridge.devtools.qwen_vocab import QWEN3_VOCAB_SIZE, qwen3_tokenizer

        tokenizer = qwen3_tokenizer()
        rows = QWEN3_VOCAB_SIZE
    elif vocabulary == "trained":
        special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", DOC_MARKER, QUERY_MARKER]
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=_bpe_tokenizer(special),
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            padding_side="left",
        )
        tokenizer.add_special_tokens({"additional_special_tokens": special[1:]})
        rows = len(tokenizer)
    else:
        raise ValueError(f"unknown vocabulary {vocabulary!r}: trained or qwen3")
    config = Qwen3Config(
        **{"vocab_size": rows, **TINY_QWEN3, **(shape or {})},
        max_position_embeddings=context_length,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    )
    backbone = Qwen3Model(config)
    hidden = config.hidden_size
    # Same shapes as the real head relative to the width: hidden -> hidden/2 -> hidden/2.
    tensors = {f"model.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    tensors["projector.0.weight"] = torch.randn(hidden // 2, hidden) / hidden**0.5
    tensors["projector.2.weight"] = torch.randn(hidden // 2, hidden // 2) / (hidden // 2) ** 0.5
    tensors = {name: tensor.to(weights_dtype) for name, tensor in tensors.items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config_dict = config.to_dict()
    config_dict["architectures"] = ["JinaForRanking"]
    (folder / "config.json").write_text(json.dumps(config_dict, indent=2))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_cross_encoder(folder: Path, seed: int = 0, initializer_range: float = 0.5) -> Path:
    """`initializer_range`: 0.5 spreads a random model's scores wide (parity tests
    see every difference); BERT's own 0.02 is what a model to be trained starts from."""
    torch.manual_seed(seed)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    raw = _bpe_tokenizer(special)
    cls_id, sep_id = raw.token_to_id("[CLS]"), raw.token_to_id("[SEP]")
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=512,
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=initializer_range,
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder to write listwise/ and cross-encoder/ into")
    args = parser.parse_args()
    print(build_listwise(args.out / "listwise"))
    print(build_cross_encoder(args.out / "cross-encoder"))


if __name__ == "__main__":
    main()
