"""Exporting a pointwise model to ONNX, once, and caching it beside the model.

The export runs locally from the module the torch path already loaded (nothing
is downloaded). Files are keyed by a fingerprint of the folder's weights and
config and of the exporter's versions, so a changed model or upgraded torch
exports again, and a second server on the same folder reuses the file. Each
file is written under a temporary name and renamed into place, so a reader
never sees half a model. When the model folder is read-only the cache is
`$XDG_CACHE_HOME/rerank-bridge/onnx/` instead.

int8 is ONNX Runtime's dynamic quantisation: weights of every MatMul become
int8 per output channel, activations are quantised on the fly. Per-channel
scales matter: on the packaged MiniLM, per-tensor int8 left the worst of 51
embeddings at a cosine of 0.90 with fp32, per-channel at 0.99 (docs/server.md gives
the ranking quality measured with both precisions).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# Bump when the exported graph changes for the same model (a new wrapper, opset...).
# 2: the TorchScript exporter instead of torch.export's (see export()).
EXPORT_FORMAT = 2
OPSET = 17
PRECISIONS = ("float32", "int8")


def fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of the folder's files (not their bytes:
    hashing a few GB of weights would cost more than the export it saves)."""
    import onnxruntime

    digest = hashlib.sha256(f"{EXPORT_FORMAT}:{torch.__version__}:{onnxruntime.__version__}".encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "onnx" not in path.relative_to(folder).parts:
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def cache_folder(model_folder: Path) -> Path:
    beside = model_folder / "onnx"
    try:
        beside.mkdir(exist_ok=True)
        if os.access(beside, os.W_OK):
            return beside
    except OSError:
        pass
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = hashlib.sha256(str(model_folder.resolve()).encode()).hexdigest()[:16]
    fallback = base / "rerank-bridge" / "onnx" / name
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def export(
    module: torch.nn.Module,
    example: dict[str, torch.Tensor],
    output_name: str,
    target: Path,
) -> None:
    """`module(**example)` must return one tensor; batch and sequence stay dynamic.

    The TorchScript exporter (`dynamo=False`), not torch.export's: ONNX Runtime fuses
    the GELU and layer norms of the graph it writes when a session loads it, and not
    the other's. MiniLM on 51 SciFact passages, 2-core Xeon, one run
    (bench/onnx_exporters.py): int8 1,207 ms against 1,632, float32 2,538 against 2,634.
    """
    # That exporter takes the inputs by position and names them in the order of
    # forward()'s parameters, whatever order the example's keys come in.
    parameters = list(inspect.signature(module.forward).parameters)
    names = parameters[: len(example)]
    if set(names) != set(example):
        raise ValueError(f"the example's inputs {sorted(example)} must lead forward()'s {parameters}")
    axes = {name: {0: "batch", 1: "sequence"} for name in names}

    def write(path: Path) -> None:
        # The exporter prints its progress (stdout may be a pipe someone parses)
        # and warns about axis names it merges; neither concerns the server's user.
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export(path)

    def _export(path: Path) -> None:
        torch.onnx.export(
            module,
            tuple(example[name] for name in names),
            str(path),
            input_names=names,
            output_names=[output_name],
            dynamic_axes={**axes, output_name: {0: "batch"}},
            dynamo=False,
            opset_version=OPSET,
            verbose=False,
        )

    _write_atomically(target, write)


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _write_atomically(
        target,
        lambda path: quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True),
    )


def exported_model(
    model_folder: Path,
    name: str,
    precision: str,
    build: Callable[[], tuple[torch.nn.Module, dict[str, torch.Tensor], str]],
) -> Path:
    """The cached ONNX file of this model at `precision`, exported first if needed.
    `build()` gives the module to export, example inputs and the output's name."""
    if precision not in PRECISIONS:
        raise ValueError(f"ONNX precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    folder = cache_folder(model_folder)
    key = fingerprint(model_folder)
    fp32 = folder / f"{name}-{key}-float32.onnx"
    if not fp32.exists():
        log.info("exporting %s to ONNX at %s (once per model and torch version)", model_folder, fp32)
        module, example, output_name = build()
        export(module, example, output_name, fp32)
    if precision == "float32":
        return fp32
    int8 = folder / f"{name}-{key}-int8.onnx"
    if not int8.exists():
        log.info("quantising %s to int8 at %s", fp32.name, int8)
        quantize_int8(fp32, int8)
    return int8
