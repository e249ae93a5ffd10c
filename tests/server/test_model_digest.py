"""A served model is known by its files, not only its name (backends/model_digest.py):
every `rerank-bridge train` writes its model to `<out>/model`, so two different models
are both served as `model`, and eval's caches and indices must never take one for the
other. GetModelInfo reports the digest of the files each model was loaded from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rerank_bridge.search import RerankClient
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.backends.model_digest import folder_digest
from rerank_bridge.server.backends.registry import builtin_minilm_folder
from rerank_bridge.server.config import ServerConfig


def copy_of_minilm(root: Path) -> Path:
    folder = root / "model"
    shutil.copytree(builtin_minilm_folder(), folder)
    return folder


def retrained(folder: Path) -> None:
    """Another model in the same folder: one weight moved, as training moves them all."""
    weights = load_file(folder / "model.safetensors")
    name = next(n for n in sorted(weights) if n.endswith("weight"))
    weights[name] = weights[name] + 0.01 * torch.ones_like(weights[name])
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def test_the_digest_follows_the_files_not_the_folder(tmp_path: Path) -> None:
    first, second = copy_of_minilm(tmp_path / "a"), copy_of_minilm(tmp_path / "b")
    assert folder_digest(first) == folder_digest(second)
    retrained(second)
    assert folder_digest(first) != folder_digest(second)
    # A file's name is part of what a folder holds, not only its bytes.
    moved = copy_of_minilm(tmp_path / "c")
    (moved / "vocab.txt").rename(moved / "vocab-old.txt")
    assert folder_digest(moved) != folder_digest(first)


def served_info(model: str) -> tuple[str, str, str]:
    server = BackgroundServer(ServerConfig(model=model, port=0)).start()
    try:
        with RerankClient(server.address) as client:
            info = client.model_info()
        return info.model_id, info.model_digest, info.embed_model_digest
    finally:
        server.stop()


@pytest.mark.slow
def test_two_models_of_one_name_are_told_apart_by_what_the_server_reports(tmp_path: Path) -> None:
    first, second = copy_of_minilm(tmp_path / "run-1"), copy_of_minilm(tmp_path / "run-2")
    retrained(second)
    one, other = served_info(str(first)), served_info(str(second))
    assert one[0] == other[0] == "model"
    assert one[1] == folder_digest(first) and other[1] == folder_digest(second) and one[1] != other[1]
    # A bi-encoder embeds for itself: its Embed model is the same files.
    assert one[2] == one[1] and other[2] == other[1]
    assert served_info("fake")[1:] == ("", "")
