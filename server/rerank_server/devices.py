"""Where and how a model runs: device, dtype and attention kernel, chosen once at load."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype
    attention: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def resolve_placement(device: str = "auto", dtype: str = "auto", attention: str = "auto") -> Placement:
    """`auto` means: a GPU when there is one, in bf16 with flash attention if installed
    (else PyTorch SDPA); on CPU fp32, since CPUs without native bf16 run it ~5x slower."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen_device = torch.device(device)
    if dtype == "auto":
        chosen_dtype = torch.bfloat16 if chosen_device.type == "cuda" else torch.float32
    else:
        try:
            chosen_dtype = DTYPES[dtype]
        except KeyError:
            raise ValueError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {dtype!r}") from None
    if attention == "auto":
        has_flash = importlib.util.find_spec("flash_attn") is not None
        on_gpu_half = chosen_device.type == "cuda" and chosen_dtype != torch.float32
        attention = "flash_attention_2" if has_flash and on_gpu_half else "sdpa"
    return Placement(chosen_device, chosen_dtype, attention)
