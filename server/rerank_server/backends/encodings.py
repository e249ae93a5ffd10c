"""Helpers shared by the pointwise backends: per-sequence encodings in, one padded batch out."""

from __future__ import annotations

import numpy as np


def pad_batch(encodings: list[dict[str, list[int]]], pad_id: int) -> dict[str, np.ndarray]:
    """Pads a batch assembled from sequences of different requests, as int64 arrays
    (right padding: these encoders attend bidirectionally and read only masked
    positions). `input_ids` pads with the tokenizer's pad id, the rest with 0."""
    width = max(len(e["input_ids"]) for e in encodings)
    batch = {}
    for name in encodings[0]:
        array = np.full((len(encodings), width), pad_id if name == "input_ids" else 0, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            values = encoding[name]
            array[row, : len(values)] = values
        batch[name] = array
    return batch
