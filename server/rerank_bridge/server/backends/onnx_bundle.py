"""An exported ONNX folder: everything a cross-encoder or bi-encoder needs at serve
time, read without torch, transformers or sentence-transformers.

    rerank-bridge export --model FOLDER [--dtype int8] --out DIR
    rerank-bridge serve --model DIR

DIR holds `model.onnx` (the graph ONNX Runtime runs, at the export's precision:
the same file `--runtime onnx` caches beside a model folder), `tokenizer.json`
(the model's tokenizer with its special-token post-processing) and the manifest,
which says what the server needs to know: kind, precision, lengths, inputs, a
bi-encoder's prompts, and the pooling of a graph that gives every token's hidden
state (an encoder exported by others: models/onnx_import.py); `none` where the
graph pools itself. The torch-free server image (docker/Dockerfile, target
`server-cpu`) serves one.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_bridge.server import __version__

if TYPE_CHECKING:  # the readers need tokenizers and numpy; is_export must not
    from rerank_bridge.server.backends.base import Backend

MANIFEST = "rerank-bridge-export.json"
# 2 added prompts and pooling; a format-1 folder has neither and still loads.
FORMAT = 2
READABLE_FORMATS = (1, 2)
GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"


def is_export(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def write(backend: Backend, out: Path) -> dict[str, Any]:
    """Writes the folder of a backend loaded on ONNX Runtime; returns the manifest."""
    from rerank_bridge.server.backends.pointwise import PointwiseBackend
    from rerank_bridge.server.backends.runners import OnnxRunner

    if not isinstance(backend, PointwiseBackend):
        raise ValueError(f"only cross-encoders and bi-encoders export to ONNX, not a {backend.kind} model")
    model = backend.model
    if not isinstance(model.run, OnnxRunner):
        raise ValueError("the model must be loaded with runtime onnx to be exported")
    manifest = {
        "format": FORMAT,
        "kind": backend.kind,
        "model_id": backend.model_id,
        "precision": model.dtype,
        "max_length": model.max_length,
        "pad_id": model.pad_id,
        "model_input_names": model.truncator.model_input_names,
        "embed_dimensions": model.embed_dimensions,
        "prompts": model.prompts.as_dict(),
        "pooling": {"kind": "none", "normalize": False},
        "exported_with": {
            "rerank-bridge": __version__,
            "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime"),
        },
    }
    write_folder(out, model.run.path, model.truncator.backend.to_str(), manifest)
    return manifest


def write_folder(out: Path, graph: Path, tokenizer: str, manifest: dict[str, Any]) -> None:
    """The manifest goes last, so a folder without one is never taken for a whole export."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: export into a new folder")
    (out / GRAPH).write_bytes(graph.read_bytes())
    (out / TOKENIZER).write_text(tokenizer, encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def load(
    folder: Path,
    model_name: str,
    dtype: str,
    max_query_tokens: int,
    max_document_tokens: int,
    threads: int = 0,
) -> Backend:
    """The exported model, served under `model_name` (default: the name it was exported
    under). `dtype` must be auto or the precision it was exported at."""
    from tokenizers import Tokenizer

    from rerank_bridge.server.backends.bi_encoder import BiEncoderBackend
    from rerank_bridge.server.backends.cross_encoder import CrossEncoderBackend
    from rerank_bridge.server.backends.pointwise import PointwiseModel
    from rerank_bridge.server.backends.runners import OnnxRunner, PoolingRunner, Runner
    from rerank_bridge.server.backends.truncation import Truncator
    from rerank_bridge.server.domain import Prompts

    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") not in READABLE_FORMATS:
        raise ValueError(
            f"{folder}: export format {manifest.get('format')} is not one this server reads "
            f"{READABLE_FORMATS}: export it again"
        )
    precision = manifest["precision"]
    if dtype not in ("auto", precision):
        raise ValueError(f"{folder} was exported at {precision}; export it again for dtype {dtype}")
    graph = OnnxRunner(folder / GRAPH, threads)
    pooling = manifest.get("pooling", {"kind": "none"})
    run: Runner = graph
    if pooling["kind"] != "none":
        run = PoolingRunner(graph, pooling["kind"], bool(pooling["normalize"]))
    truncator = Truncator(Tokenizer.from_file(str(folder / TOKENIZER)), manifest["model_input_names"])
    model = PointwiseModel(
        truncator=truncator,
        pad_id=int(manifest["pad_id"]),
        max_length=int(manifest["max_length"]),
        run=run,
        device="cpu",
        dtype=precision,
        dtype_reason=f"exported at {precision} ({folder.name}/{MANIFEST})",
        embed_dimensions=int(manifest["embed_dimensions"]),
        prompts=Prompts(**manifest.get("prompts", {})),
    )
    backends = {"cross-encoder": CrossEncoderBackend, "bi-encoder": BiEncoderBackend}
    if manifest["kind"] not in backends:
        raise ValueError(f"{folder}: unknown exported kind {manifest['kind']!r}")
    backend = backends[manifest["kind"]]
    return backend(model_name or manifest["model_id"], model, max_query_tokens, max_document_tokens)
