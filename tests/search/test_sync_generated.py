"""The sync client and connector are generated from the async ones: a hand edit to
_sync/, or an _async/ change without regenerating, fails here."""

from rerank_bridge.devtools import unasync


def test_the_committed_sync_package_is_what_the_async_one_generates() -> None:
    assert unasync.stale() == [], "run: python -m rerank_bridge.devtools.unasync"


def test_the_sync_twin_drops_every_await_and_async_name() -> None:
    for name, text in unasync.generated().items():
        code = text.split('"""', 2)[-1]  # past the module docstring
        assert "await " not in code and "async def" not in code and "Async" not in code, name
