"""The package's layers, read from the source (every import statement, the ones
inside functions too): the contract at the bottom; the library (`search`) and the
scoring server side by side on it, neither importing the other; the bridge, wiring
and evaluation above them, each on its own; the command on top. The developer tools
may import anything and nothing in the runtime imports them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Each runtime subpackage of rerank_bridge, its folder, and its layer (higher sits on lower).
LAYERS = {
    "proto": ("proto", 0),
    "search": ("connectors", 1),
    "server": ("server", 1),
    "bridge": ("connectors", 2),
    "wiring": ("connectors", 2),
    "evaluation": ("connectors", 2),
    "cli": ("connectors", 3),
}
DEVTOOLS = ("tools", "devtools")
# The generated messages: the server's, and on the library's side only the client's.
MESSAGE_IMPORTERS = ("server", "search.client_messages", "search.client_transport")


def modules(package: str, folder: str) -> Iterator[tuple[str, Path]]:
    base = ROOT / folder / "rerank_bridge" / package
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
    for package, (folder, _) in LAYERS.items():
        for module, path in modules(package, folder):
            for name in imported(path):
                yield package, module, name


def layer_violations(edges: list[tuple[str, str, str]]) -> list[str]:
    wrong = []
    for package, module, name in edges:
        target = name.split(".")[0]
        if target == package:
            continue
        if target == DEVTOOLS[1]:
            wrong.append(f"{module} imports the developer tools ({name})")
        elif target not in LAYERS:
            wrong.append(f"{module} imports {name}, which is no package of the layout")
        elif LAYERS[target][1] >= LAYERS[package][1]:
            wrong.append(f"{module} (layer {LAYERS[package][1]}) imports {name} (layer {LAYERS[target][1]})")
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


def test_every_folder_of_the_layout_is_walked() -> None:
    for package, (folder, _) in {**LAYERS, DEVTOOLS[1]: (DEVTOOLS[0], 0)}.items():
        assert any(True for _ in modules(package, folder)), f"{folder}/rerank_bridge/{package} is empty"
