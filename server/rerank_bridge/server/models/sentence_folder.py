"""A sentence-transformers folder written from a BertModel's tensors, a tokenizer.json,
the pooling and the prompts: what `rerank-bridge serve` (and sentence-transformers
itself) loads. sentence-transformers writes its own module files, so the folder
is in the layout its installed version reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from sentence_transformers import SentenceTransformer, models
from transformers import PreTrainedTokenizerFast

from rerank_bridge.server.domain import Prompts

# XLM-R's special tokens, as its tokenizer.json names them.
XLMR_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def write_sentence_folder(
    out: Path,
    config: dict[str, object],
    tensors: dict[str, np.ndarray],
    tokenizer: Path,
    pooling: str,
    prompts: Prompts,
    max_length: int,
) -> None:
    encoder = out.parent / f".{out.name}.encoder"
    encoder.mkdir(parents=True)
    hidden = int(config["hidden_size"])  # type: ignore[call-overload]
    # BertModel's pooler is never read by a sentence embedding; zeros keep the load
    # from reporting it as newly initialised.
    tensors = tensors | {
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
        "pooler.dense.bias": np.zeros(hidden, np.float32),
    }
    save_file(tensors, str(encoder / "model.safetensors"))
    (encoder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer), model_max_length=max_length, **XLMR_SPECIAL_TOKENS
    )
    fast.save_pretrained(str(encoder))
    modules = [
        models.Transformer(str(encoder), max_seq_length=max_length),
        models.Pooling(hidden, pooling),
        models.Normalize(),
    ]
    model = SentenceTransformer(modules=modules, prompts=prompts.as_dict(), device="cpu")
    model.save(str(out))
    # The encoder's files now live in `out`; the staging folder goes.
    shutil.rmtree(encoder)
