"""A sentence-transformers folder written from a BertModel's tensors, a tokenizer.json,
the pooling and the prompts: what `rerank-bridge serve`, sentence-transformers and
other serving systems load.

The files are the classic layout the models on the Hugging Face hub use
(`sentence_transformers.models.*` module names, `max_seq_length` in
sentence_bert_config.json, a named tokenizer class), written here rather than by
sentence-transformers' own `save()`: version 6 writes a layout that older readers
(sentence-transformers 3, transformers 4, infinity-emb) cannot load, and it reads
the classic one itself. Needs safetensors and numpy only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

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
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_sentence_folder(
    out: Path,
    config: dict[str, Any],
    tensors: dict[str, np.ndarray],
    tokenizer: Path,
    pooling: str,
    prompts: Prompts,
    max_length: int,
) -> None:
    """An XLM-R-tokenised BertModel (multilingual-e5-small) as a sentence-transformers folder."""
    out.mkdir(parents=True)
    hidden = int(config["hidden_size"])
    # BertModel's pooler is never read by a sentence embedding; zeros keep the load
    # from reporting it as newly initialised.
    tensors = tensors | {
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
        "pooler.dense.bias": np.zeros(hidden, np.float32),
    }
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", config)
    (out / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    _write_json(
        out / "tokenizer_config.json",
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_length, **XLMR_SPECIAL_TOKENS},
    )
    _write_json(out / "special_tokens_map.json", XLMR_SPECIAL_TOKENS)
    _write_json(out / "modules.json", MODULES)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    mode = {"cls": "cls_token", "mean": "mean_tokens"}[pooling]
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": hidden} | {f"pooling_mode_{m}": m == mode for m in POOLING_MODES},
    )
    (out / "2_Normalize").mkdir()
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": prompts.as_dict(), "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )
