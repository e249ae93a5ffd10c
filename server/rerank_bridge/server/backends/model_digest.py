"""What a loaded model is, as its files say: a digest of every file of the folder it
was loaded from, names and bytes. A model's id is its folder's name or the name it is
served under, and two different models can share one (every `rerank-bridge train`
writes `<out>/model`); whatever keeps results per model (eval's score and vector
caches, the indices it builds) keys them by this instead, so that a retrained model
never reads another's."""

from __future__ import annotations

import hashlib
from pathlib import Path

# Read in pieces: weights run to gigabytes.
CHUNK_BYTES = 1 << 20
# Hex digits kept: enough that two models never meet, short enough for index names.
DIGEST_LENGTH = 16


def folder_digest(folder: Path) -> str:
    """SHA-256 over the folder's files in name order, each its relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()[:DIGEST_LENGTH]
