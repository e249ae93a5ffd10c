"""The package's layers, read from the source (every import statement, the ones
inside functions too): the contract at the bottom; the library (`search`) and the
scoring server side by side on it, neither importing the other; the bridge, wiring
and evaluation above them, each on its own; training above evaluation; the command on top. The developer tools
may import anything and nothing in the runtime imports them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from rerank_bridge.devtools import checkout

# Each runtime subpackage of rerank_bridge and its layer (higher sits on lower); where each
# lives is the package's folder map, read from pyproject.toml (rerank_bridge.devtools.checkout).
LAYERS = {
    "proto": 0,
    "search": 1,
    "server": 1,
    "bridge": 2,
    "wiring": 2,
    "evaluation": 2,
    # Training mines with evaluation's first stage and reports through it.
    "training": 3,
    "cli": 4,
}
DEVTOOLS = "devtools"
# The generated messages: the server's, and on the library's side only the client's.
MESSAGE_IMPORTERS = ("server", "search.client_messages", "search.client_transport")


def modules(package: str) -> Iterator[tuple[str, Path]]:
    base = checkout.package_folder(f"{checkout.PACKAGE}.{package}")
    for path in sorted(base.rglob("*.py")):
        dotted = ".".join(path.relative_to(base.parent).with_suffix("").parts)
        yield dotted.removesuffix(".__init__"), path


def imported(path: Path) -> set[str]:
    """Every rerank_bridge module the file names in an import, as `package.rest`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name.removeprefix("rerank_bridge.") for name in names if name.startswith("rerank_bridge.")}


def runtime_imports() -> Iterator[tuple[str, str, str]]:
    """(importing package, importing module, imported module) across the runtime."""
    for package in LAYERS:
        for module, path in modules(package):
            for name in imported(path):
                yield package, module, name


def layer_violations(edges: list[tuple[str, str, str]]) -> list[str]:
    wrong = []
    for package, module, name in edges:
        target = name.split(".")[0]
        if target == package:
            continue
        if target == DEVTOOLS:
            wrong.append(f"{module} imports the developer tools ({name})")
        elif target not in LAYERS:
            wrong.append(f"{module} imports {name}, which is no package of the layout")
        elif LAYERS[target] >= LAYERS[package]:
            wrong.append(f"{module} (layer {LAYERS[package]}) imports {name} (layer {LAYERS[target]})")
    return wrong


def test_every_import_runs_down_the_layers_and_none_reaches_the_devtools() -> None:
    edges = list(runtime_imports())
    assert len(edges) > 50  # the walk saw the code (an empty walk would pass anything)
    assert layer_violations(edges) == []


def test_the_generated_messages_stay_with_the_server_and_the_client() -> None:
    outside = sorted(
        f"{module} imports {name}"
        for package, module, name in runtime_imports()
        if package != "proto" and name.startswith("proto.v1") and not module.startswith(MESSAGE_IMPORTERS)
    )
    assert outside == []


def test_the_rule_catches_an_upward_a_sideways_and_a_devtools_import() -> None:
    # The checker itself, on edges the real code must never have.
    edges = [
        ("search", "search.client", "server.app"),
        ("server", "server.app", "search.client"),
        ("bridge", "bridge.app", "wiring.command"),
        ("proto", "proto.request_ids", "cli.main"),
        ("server", "server.backends.fast_bpe", "devtools.qwen_vocab"),
        ("cli", "cli.main", "bridge.app"),
    ]
    assert len(layer_violations(edges)) == 5


def test_every_package_of_the_layout_has_a_layer_and_is_walked() -> None:
    top_level = {name.split(".")[1] for name in checkout.package_folders()}
    assert top_level == {*LAYERS, DEVTOOLS}
    for package in top_level:
        assert any(True for _ in modules(package)), f"{checkout.PACKAGE}.{package} has no module"
