"""Dynamic batching between the gRPC handlers and a backend.

Handlers submit plans (a request's sequences plus how to finish them); one
worker thread owns the model and packs sequences of concurrent requests, in
arrival order, into forward passes under a padded-token budget. The queue is
bounded, and a request whose deadline has passed or whose client went away is
dropped before any more of its sequences reach the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rerank_server.backends.base import Backend, Plan
from rerank_server.domain import Timings
from rerank_server.errors import Cancelled, DeadlineExceeded, RerankError, ResourceExhausted, Unavailable
from rerank_server.metrics import BATCH_SEQUENCES

log = logging.getLogger(__name__)
ResultT = TypeVar("ResultT")


@dataclass(eq=False)
class _Job(Generic[ResultT]):
    plan: Plan[ResultT]
    future: asyncio.Future[tuple[ResultT, Timings]]
    loop: asyncio.AbstractEventLoop
    deadline: float | None
    enqueued: float
    outputs: list[Any] = field(default_factory=list)
    next_sequence: int = 0
    received: int = 0
    started: float | None = None
    compute_s: float = 0.0
    cancelled: bool = False
    done: bool = False


class Scheduler:
    def __init__(
        self,
        backend: Backend,
        max_batch_tokens: int,
        max_batch_sequences: int,
        max_queue: int,
        name: str = "",
    ) -> None:
        self.backend = backend
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_sequences = max_batch_sequences
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._pending: deque[_Job[Any]] = deque()
        self._active = 0  # admitted and not yet settled: the queue bound counts these
        self._stopping = False
        self._thread = threading.Thread(
            target=self._work, name=f"scheduler-{name or backend.kind}", daemon=True
        )
        # Sizes of recent forward passes, in sequences (for metrics and tests).
        self.recent_batches: deque[int] = deque(maxlen=4096)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def depth(self) -> int:
        with self._cond:
            return self._active

    async def run(self, plan: Plan[ResultT], deadline: float | None) -> tuple[ResultT, Timings]:
        """Runs the plan; `deadline` is on the time.monotonic() clock."""
        if not plan.sequences:
            return plan.finish([]), Timings(0.0, 0.0)
        loop = asyncio.get_running_loop()
        job: _Job[ResultT] = _Job(plan, loop.create_future(), loop, deadline, time.monotonic())
        job.outputs = [None] * len(plan.sequences)
        with self._cond:
            if self._stopping:
                raise Unavailable("the server is shutting down")
            if self._active >= self.max_queue:
                raise ResourceExhausted(
                    f"queue full: {self.max_queue} requests waiting or running; retry later"
                )
            self._active += 1
            self._pending.append(job)
            self._cond.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            # The worker sees the flag before scheduling more of this job.
            job.cancelled = True
            raise

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    for job in list(self._pending):
                        self._settle(job, error=Unavailable("the server is shutting down"))
                    self._pending.clear()
                    return
                batch = self._take_batch(time.monotonic())
            if batch:
                self._run_batch(batch)

    def _take_batch(self, now: float) -> list[tuple[_Job[Any], int]]:
        """Pops sequences in arrival order while the padded batch fits the budget."""
        batch: list[tuple[_Job[Any], int]] = []
        width = 0
        while self._pending:
            job = self._pending[0]
            if job.cancelled or (job.deadline is not None and now >= job.deadline):
                self._pending.popleft()
                reason: RerankError = (
                    Cancelled("the client cancelled the request")
                    if job.cancelled
                    else DeadlineExceeded("the request's deadline passed before its scoring finished")
                )
                self._settle(job, error=reason)
                continue
            sequences = job.plan.sequences
            while job.next_sequence < len(sequences):
                grown = max(width, sequences[job.next_sequence].num_tokens)
                full = (
                    len(batch) >= self.max_batch_sequences or grown * (len(batch) + 1) > self.max_batch_tokens
                )
                if batch and full:
                    return batch
                if job.started is None:
                    job.started = now
                batch.append((job, job.next_sequence))
                job.next_sequence += 1
                width = grown
            self._pending.popleft()
        return batch

    def _run_batch(self, batch: list[tuple[_Job[Any], int]]) -> None:
        jobs = list(dict.fromkeys(job for job, _ in batch))
        started = time.perf_counter()
        try:
            outputs = self.backend.forward([job.plan.sequences[i].payload for job, i in batch])
        except Exception as error:
            log.exception("forward pass of %d sequences failed", len(batch))
            for job in jobs:
                with self._cond:
                    self._settle(job, error=error)
            return
        elapsed = time.perf_counter() - started
        self.recent_batches.append(len(batch))
        BATCH_SEQUENCES.observe(len(batch))
        for (job, index), output in zip(batch, outputs, strict=True):
            job.outputs[index] = output
            job.received += 1
        for job in jobs:
            job.compute_s += elapsed
            if job.received == len(job.outputs) and not job.done:
                self._finish(job)

    def _finish(self, job: _Job[Any]) -> None:
        try:
            result = job.plan.finish(job.outputs)
        except Exception as error:
            log.exception("finishing a request failed")
            with self._cond:
                self._settle(job, error=error)
            return
        started = job.started if job.started is not None else job.enqueued
        timings = Timings(queue_ms=(started - job.enqueued) * 1e3, compute_ms=job.compute_s * 1e3)
        with self._cond:
            self._settle(job, value=(result, timings))

    def _settle(self, job: _Job[Any], value: Any = None, error: BaseException | None = None) -> None:
        """Resolves a job exactly once (caller holds the lock) and frees its queue slot."""
        if job.done:
            return
        job.done = True
        self._active -= 1

        def resolve() -> None:
            if job.future.done():  # the handler was cancelled meanwhile
                return
            if error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)

        # A closed event loop raises RuntimeError: nobody waits for the answer any more.
        with contextlib.suppress(RuntimeError):
            job.loop.call_soon_threadsafe(resolve)
