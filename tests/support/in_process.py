"""The scoring server and its backends, run in the test's own process."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import ServerConfig

if TYPE_CHECKING:  # torch and transformers load only where a test builds a backend
    from rerank_bridge.server.backends.listwise import ListwiseBackend


def start_server(**settings: object) -> BackgroundServer:
    settings.setdefault("port", 0)
    return BackgroundServer(ServerConfig(**settings)).start()  # type: ignore[arg-type]


def small_pass_listwise(folder: Path) -> ListwiseBackend:
    """The listwise model in fp32 with at most 3 documents per pass, so 7 documents
    need 3 blocks, and batches padded as on a GPU."""
    from rerank_bridge.server.backends.listwise import ListwiseBackend
    from rerank_bridge.server.devices import resolve_placement

    placement = resolve_placement("cpu", "float32")
    return ListwiseBackend(folder, "tiny", placement, 512, 2048, max_documents_per_pass=3, pad_batches=True)
