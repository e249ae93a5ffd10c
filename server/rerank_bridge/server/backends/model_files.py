"""Reading tensors straight from a Hugging Face model folder (single or sharded safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open


def read_tensors(folder: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """Loads the named tensors, wherever the shard index puts them."""
    index_file = folder / "model.safetensors.index.json"
    if index_file.exists():
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
        missing = [n for n in names if n not in weight_map]
        files = {n: folder / weight_map[n] for n in names if n in weight_map}
    else:
        single = folder / "model.safetensors"
        if not single.exists():
            raise FileNotFoundError(f"{folder} has no model.safetensors (nor a shard index)")
        files = dict.fromkeys(names, single)
        missing = []
    tensors: dict[str, torch.Tensor] = {}
    for path in set(files.values()):
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            for name, file in files.items():
                if file == path and name in keys:
                    tensors[name] = handle.get_tensor(name)
    missing += [n for n in names if n not in tensors and n not in missing]
    if missing:
        raise KeyError(f"{folder}: tensors not found: {', '.join(missing)}")
    return tensors
