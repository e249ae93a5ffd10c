"""The matrix instructions this CPU offers, as torch's CPU dispatch reports them.

The precision a model runs at on a CPU depends on them (devices.py): with AMX
or AVX512-BF16, oneDNN multiplies bf16 matrices natively, 2-6x the fp32 rate
(bench/server_throughput.py measures it as `roofline.matmul_gflops`); without
them bf16 is converted to fp32 around every multiply and is slower than fp32.
Detection is a value handed down, so tests can describe any CPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuFeatures:
    name: str = "unknown"
    amx_bf16: bool = False
    amx_int8: bool = False
    avx512_bf16: bool = False
    avx512_vnni: bool = False

    @property
    def native_bf16(self) -> str | None:
        """The instruction set that multiplies bf16 matrices natively, if any (AMX first:
        it is the faster of the two where both exist)."""
        if self.amx_bf16:
            return "AMX-BF16"
        if self.avx512_bf16:
            return "AVX512-BF16"
        return None


@functools.cache
def detect() -> CpuFeatures:
    """This machine's features, from the cpuinfo library torch's kernels dispatch on."""
    import torch

    capabilities = torch.cpu.get_capabilities()
    return CpuFeatures(
        name=str(capabilities.get("cpu_name", "unknown")),
        amx_bf16=bool(capabilities.get("amx_bf16")),
        amx_int8=bool(capabilities.get("amx_int8")),
        avx512_bf16=bool(capabilities.get("avx512_bf16")),
        avx512_vnni=bool(capabilities.get("avx512_vnni")),
    )
