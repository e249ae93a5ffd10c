"""The sync client and connector are generated from the async ones: a hand edit to
_sync/, or an _async/ change without regenerating, fails here."""

import importlib.util
from types import ModuleType

from rerank_bridge.devtools import checkout


def _generator() -> ModuleType:
    # A script of the checkout, not a module of the package (the wheel leaves it out).
    path = checkout.root() / "connectors" / "generate_sync.py"
    spec = importlib.util.spec_from_file_location("generate_sync", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_sync_package_is_what_the_async_one_generates() -> None:
    assert _generator().stale() == [], "run: python connectors/generate_sync.py"


def test_the_sync_twin_drops_every_await_and_async_name() -> None:
    for name, text in _generator().generated().items():
        code = text.split('"""', 2)[-1]  # past the module docstring
        assert "await " not in code and "async def" not in code and "Async" not in code, name
