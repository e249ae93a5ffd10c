"""How many tokens one listwise block may hold on a CPU.

A block is one forward pass, and its activations grow with its length. A GPU
server is sized by its batch token budget; on a CPU the model's own context
(131,072 tokens for jina-reranker-v3) can ask for more memory than a small
machine or container has. So on a CPU the block is capped by the memory free
at load: what one layer keeps alive per token, times the tokens, must fit in
half of it (the rest is left to the weights' pages, the tokenizer, other
requests' buffers and the OS). `--context-length` overrides the cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Share of the free memory one block's activations may take.
ACTIVATION_SHARE = 0.5


def activation_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Bytes one token may keep alive inside a decoder layer during a forward pass
    without a key/value cache (the backend passes use_cache=False), counting every
    tensor the layer makes as if all lived to its end: five of the hidden width (the
    normalised input, the attention's projection out, the residual sum, its
    normalised copy, the feed-forward's output), four of the query width and of the
    key/value width (projection, normalised, rotated, and the attention output or the
    values), four of the feed-forward's (gate, up, activation, product). Layers run
    one after another, so one layer's worth is the peak. An upper bound for long
    blocks: bench/listwise_cpu.py measured 480-558 MiB added (two runs) at 13,645
    tokens in bf16 at the real shape, where this gives 773 MiB."""
    hidden, intermediate = int(config.hidden_size), int(config.intermediate_size)
    heads = int(config.num_attention_heads)
    head_size = int(getattr(config, "head_dim", None) or hidden // heads)
    key_value = int(getattr(config, "num_key_value_heads", None) or heads) * head_size
    query = heads * head_size
    return dtype_bytes * (5 * hidden + 4 * query + 4 * key_value + 4 * intermediate)


def available_memory(
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Bytes free for this process: the smaller of the machine's MemAvailable and
    what the container's cgroup (v2) still allows; None where neither can be read."""
    limits = []
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        ceiling = (cgroup / "memory.max").read_text().strip()
        if ceiling != "max":
            limits.append(int(ceiling) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def cpu_block_tokens(model_context: int, per_token_bytes: int, free_bytes: int | None, floor: int) -> int:
    """The model's context, lowered to what fits in ACTIVATION_SHARE of `free_bytes`,
    in multiples of 1,024, never below `floor` (the smallest block one request needs)."""
    if free_bytes is None:
        return model_context
    fits = int(free_bytes * ACTIVATION_SHARE / per_token_bytes) // 1024 * 1024
    return max(floor, min(model_context, fits))
