"""Dynamic batching between the gRPC handlers and a backend.

Handlers submit plans (a request's sequences plus how to finish them); one
worker thread owns the model and packs sequences of concurrent requests, in
arrival order, into forward passes under a padded-token budget. The queue is
bounded, and a request whose deadline has passed or whose client went away is
dropped before any more of its sequences reach the model.

It cannot wedge: a forward pass that raises, or returns the wrong number of
outputs, fails exactly the requests in that batch (INTERNAL, with an incident
id that is in the log) and the worker carries on; a request failed while
only partly batched is withdrawn whole, so none of its other sequences run;
a cancelled request frees its queue slot at once, an expired one at the
latest when the next request is admitted. Should the worker die anyway, every
waiting request is answered UNAVAILABLE and `on_death` tells the server,
which stops serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rerank_bridge.proto.incidents import report_incident
from rerank_bridge.server.backends.base import Backend, Plan
from rerank_bridge.server.domain import Timings
from rerank_bridge.server.errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    RerankError,
    ResourceExhausted,
    Unavailable,
    internal_message,
)
from rerank_bridge.server.metrics import BATCH_SEQUENCES

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
    done: bool = False

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


def _incident(what: str) -> Internal:
    # A batch serves several requests: the log line names the incident, not one request.
    return Internal(internal_message(report_incident(log, what)))


class Scheduler:
    def __init__(
        self,
        backend: Backend,
        max_batch_tokens: int,
        max_batch_sequences: int,
        max_queue: int,
        name: str = "",
        on_death: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_sequences = max_batch_sequences
        self.max_queue = max_queue
        self.on_death = on_death
        self._cond = threading.Condition()
        self._pending: deque[_Job[Any]] = deque()
        self._active = 0  # admitted and not yet settled: the queue bound counts these
        self._stopping = False
        self._running: list[_Job[Any]] = []  # the jobs of the pass in progress
        self.dead = False
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
            if self._stopping or self.dead:
                raise Unavailable("the server is shutting down")
            self._drop_dead_jobs(job.enqueued)
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
            # The client went away (or its deadline passed): the slot is free now.
            with self._cond:
                self._withdraw(job, Cancelled("the client cancelled the request"))
            raise

    def _drop_dead_jobs(self, now: float) -> None:
        """Frees the slots of waiting jobs whose deadline passed (lock held)."""
        for job in [job for job in self._pending if job.expired(now)]:
            self._withdraw(job, DeadlineExceeded("the request's deadline passed before its scoring finished"))

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        self._fail_all(Unavailable("the server is shutting down"))
                        return
                    batch = self._take_batch(time.monotonic())
                if batch:
                    self._run_batch(batch)
        except BaseException:
            log.critical("the scheduler's worker died; the server stops serving", exc_info=True)
            with self._cond:
                self.dead = True
                error = Unavailable("the server's model worker stopped; retry on another replica")
                for job in self._running:
                    self._withdraw(job, error)
                self._fail_all(error)
            if self.on_death is not None:
                self.on_death()

    def _fail_all(self, error: RerankError) -> None:
        """Answers every waiting job (lock held)."""
        for job in list(self._pending):
            self._withdraw(job, error)

    def _take_batch(self, now: float) -> list[tuple[_Job[Any], int]]:
        """Pops sequences in arrival order while the padded batch fits the budget."""
        self._drop_dead_jobs(now)
        batch: list[tuple[_Job[Any], int]] = []
        width = 0
        while self._pending:
            job = self._pending[0]
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
        self._running = jobs
        started = time.perf_counter()
        try:
            outputs = self.backend.forward([job.plan.sequences[i].payload for job, i in batch])
            if len(outputs) != len(batch):
                raise RuntimeError(f"the backend returned {len(outputs)} outputs for {len(batch)} sequences")
        except Exception:
            failure = _incident(f"forward pass of {len(batch)} sequences ({len(jobs)} requests) failed")
            with self._cond:
                for job in jobs:
                    self._withdraw(job, failure)
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
        except Exception:
            failure = _incident("finishing a request failed")
            with self._cond:
                self._withdraw(job, failure)
            return
        started = job.started if job.started is not None else job.enqueued
        timings = Timings(queue_ms=(started - job.enqueued) * 1e3, compute_ms=job.compute_s * 1e3)
        with self._cond:
            self._settle(job, value=(result, timings))

    def _withdraw(self, job: _Job[Any], error: RerankError) -> None:
        """Fails a job whole (lock held): none of its sequences still waiting will run."""
        with contextlib.suppress(ValueError):
            self._pending.remove(job)
        self._settle(job, error=error)

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
