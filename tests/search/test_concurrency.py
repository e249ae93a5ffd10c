"""The first stage's concurrent calls: results in the order asked, and a failure that
leaves no call running behind it (async) or lost (threads)."""

from __future__ import annotations

import asyncio
import time

import pytest

from rerank_bridge.search.concurrency import call_all, gather_calls


def test_results_come_in_the_order_the_calls_were_given() -> None:
    async def after(seconds: float, value: str) -> str:
        await asyncio.sleep(seconds)
        return value

    calls = [lambda: after(0.05, "slow"), lambda: after(0.0, "fast")]
    assert asyncio.run(gather_calls(calls)) == ["slow", "fast"]
    assert call_all([lambda: (time.sleep(0.05), "slow")[1], lambda: "fast"]) == ["slow", "fast"]


def test_a_failing_call_raises_its_own_error_and_cancels_the_other() -> None:
    finished: list[str] = []

    async def fails() -> str:
        raise ValueError("engine said no")

    async def slow() -> str:
        await asyncio.sleep(5)
        finished.append("slow")
        return "slow"

    async def run() -> None:
        started = time.monotonic()
        with pytest.raises(ValueError, match="engine said no"):
            await gather_calls([slow, fails])
        assert time.monotonic() - started < 4  # did not wait for the slow call
        await asyncio.sleep(0)
        assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    asyncio.run(run())
    assert finished == []


def test_a_failing_thread_call_raises_its_own_error() -> None:
    def fails() -> str:
        raise ValueError("engine said no")

    with pytest.raises(ValueError, match="engine said no"):
        call_all([lambda: "fine", fails])
