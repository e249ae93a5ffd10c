"""Independent calls run at once: a hybrid search's keyword and kNN queries are
answered in the time of the slower, not the sum. The async connector awaits
`gather_calls`; the sync connector, generated from it, calls `call_all`, which
runs them on threads (the official engine clients are thread-safe)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


async def gather_calls(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    tasks = [asyncio.ensure_future(call()) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        # When one call fails the others are not left running behind the error:
        # cancelled, and collected so that no failure goes unretrieved.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def call_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="first-stage") as pool:
        running = [pool.submit(call) for call in calls]
        return [future.result() for future in running]
