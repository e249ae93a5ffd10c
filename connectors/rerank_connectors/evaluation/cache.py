"""Disk caches that make a second evaluation of the same collection cheap:
corpus vectors (per index fingerprint) and pointwise rerank scores (per model
and collection; a pointwise score depends only on the query and the document,
so another engine's windows reuse it). Listwise scores are never cached."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    if "RERANK_CACHE" in os.environ:
        return Path(os.environ["RERANK_CACHE"])
    return Path.home() / ".cache" / "rerank-bridge"


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
