"""Helpers shared by the pointwise backends: per-sequence encodings in, padded tensors out."""

from __future__ import annotations

from typing import Any

import torch


def pad_batch(
    tokenizer: Any, encodings: list[dict[str, list[int]]], device: torch.device
) -> dict[str, torch.Tensor]:
    """Pads a batch assembled from sequences of different requests (right padding:
    these encoders attend bidirectionally and read only masked positions)."""
    batch = tokenizer.pad(encodings, padding=True, return_tensors="pt")
    return {name: tensor.to(device) for name, tensor in batch.items()}
