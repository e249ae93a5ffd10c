"""A bi-encoder's text vectors, kept so a passage that comes back is not encoded again.

A document's vector does not depend on the query, and the same documents come
back window after window (a popular page, a RAG corpus, the next page of a
search). An entry is keyed by the prompt the text went behind, the token limit
it was cut to and a digest of the text, so one cache never answers for another
prompt or cap; it belongs to one loaded model, so the model is part of the key
by construction. Least recently used entries leave first once the entries'
bytes pass the bound.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rerank_bridge.server.metrics import EMBEDDING_CACHE, EMBEDDING_CACHE_BYTES

if TYPE_CHECKING:  # the server runs the fake backend without numpy
    import numpy as np

# What an entry costs besides its vector: the key, the tuple, the dict slot (measured
# with sys.getsizeof on CPython 3.11, rounded up).
ENTRY_OVERHEAD_BYTES = 320


@dataclass(frozen=True)
class CachedVector:
    vector: np.ndarray
    # The text's own tokens the model read (prompt excluded), and whether it was cut.
    text_tokens: int
    truncated: bool


def cache_key(prompt: str, limit: int, text: str) -> tuple[str, int, bytes]:
    # A 128-bit digest: collisions are out of reach, and the key stays small however
    # long the passage.
    return prompt, limit, hashlib.blake2b(text.encode(), digest_size=16).digest()


class EmbeddingCache:
    def __init__(self, model_id: str, max_bytes: int) -> None:
        self.model_id = model_id
        self.max_bytes = max_bytes
        self.bytes = 0
        self._hits, self._misses, self._evictions = (
            EMBEDDING_CACHE.labels(model_id, event) for event in ("hit", "miss", "eviction")
        )
        self._bytes_held = EMBEDDING_CACHE_BYTES.labels(model_id)
        self._entries: OrderedDict[tuple[str, int, bytes], CachedVector] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, int, bytes]) -> CachedVector | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        (self._hits if found is not None else self._misses).inc()
        return found

    def put(self, key: tuple[str, int, bytes], entry: CachedVector) -> None:
        size = entry.vector.nbytes + ENTRY_OVERHEAD_BYTES
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = entry
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.vector.nbytes + ENTRY_OVERHEAD_BYTES
                self._evictions.inc()
            self._bytes_held.set(self.bytes)
