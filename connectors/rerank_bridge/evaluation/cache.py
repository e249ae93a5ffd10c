"""Disk caches that make a second evaluation of the same collection cheap:
corpus vectors (per index fingerprint) and pointwise rerank scores (per model
and collection; a pointwise score depends only on the query and the document,
so another engine's windows reuse it). Listwise scores are never cached."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def model_key(model_id: str, digest: str, info: Any) -> str:
    """A model as cached scores and vectors must tell it apart: its files' digest (two
    trained models are both served as `model`), and the server's runtime and precision
    (int8 scores and vectors are not fp32's). A server older than ModelInfo.runtime ran
    torch; one older than the digests says none, and is known by its id alone."""
    return "-".join(part for part in (model_id, digest, info.runtime or "torch", info.dtype) if part)


def cache_root() -> Path:
    """$RERANK_CACHE, else rerank-bridge in the user's cache folder (where the ONNX export's
    cache lies too)."""
    if "RERANK_CACHE" in os.environ:
        return Path(os.environ["RERANK_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rerank-bridge"


class JsonCache:
    def __init__(self, kind: str, key: str) -> None:
        self.path = cache_root() / kind / f"{key}.json"

    def load(self) -> Any:
        return json.loads(self.path.read_text()) if self.path.exists() else None

    def save(self, value: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(value))
        partial.replace(self.path)
