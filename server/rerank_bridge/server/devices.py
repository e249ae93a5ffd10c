"""Where and how a model runs: device, dtype and attention kernel, chosen once at load."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from rerank_bridge.server import cpu_features
from rerank_bridge.server.cpu_features import CpuFeatures

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype
    attention: str
    # Why this dtype: shown in ModelInfo, the metrics and the start-up log.
    dtype_reason: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def cpu_dtype(features: CpuFeatures) -> tuple[torch.dtype, str]:
    """bf16 where the CPU multiplies bf16 matrices natively, else fp32: emulated bf16
    converts around every multiply and runs slower than fp32."""
    native = features.native_bf16
    if native:
        return torch.bfloat16, f"auto: the CPU has {native} (native bf16 matrix multiply)"
    return torch.float32, "auto: the CPU has neither AMX-BF16 nor AVX512-BF16, so bf16 would be emulated"


def resolve_placement(
    device: str = "auto", dtype: str = "auto", attention: str = "auto", cpu: CpuFeatures | None = None
) -> Placement:
    """`auto` means: a GPU when there is one, in bf16 with flash attention if installed
    (else PyTorch SDPA); on a CPU, bf16 or fp32 by its features (`cpu`, detected when
    not given)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen_device = torch.device(device)
    if dtype != "auto":
        try:
            chosen_dtype, reason = DTYPES[dtype], "set explicitly (--dtype)"
        except KeyError:
            raise ValueError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {dtype!r}") from None
    elif chosen_device.type == "cuda":
        chosen_dtype, reason = torch.bfloat16, "auto: bf16 on a GPU"
    else:
        chosen_dtype, reason = cpu_dtype(cpu or cpu_features.detect())
    if attention == "auto":
        has_flash = importlib.util.find_spec("flash_attn") is not None
        on_gpu_half = chosen_device.type == "cuda" and chosen_dtype != torch.float32
        attention = "flash_attention_2" if has_flash and on_gpu_half else "sdpa"
    return Placement(chosen_device, chosen_dtype, attention, reason)
