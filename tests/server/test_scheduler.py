"""Dynamic batching, the queue bound, deadlines and cancellation, with the
deterministic fake backend (its forward pass can be made slow on purpose)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rerank_bridge.server.backends.base import run_plan
from rerank_bridge.server.backends.fake import FakeBackend
from rerank_bridge.server.domain import Document, RerankOutcome, RerankRequest
from rerank_bridge.server.errors import Cancelled, DeadlineExceeded, Internal, ResourceExhausted, Unavailable
from rerank_bridge.server.scheduler import Scheduler


class RecordingBackend(FakeBackend):
    """Remembers every batch it ran, as lists of the query words it carried."""

    def __init__(self, forward_s: float = 0.0) -> None:
        super().__init__(f"forward_s={forward_s}", 512, 2048)
        self.batches: list[list[Any]] = []

    def forward(self, payloads: list[Any]) -> list[Any]:
        self.batches.append([tuple(query) for query, _ in payloads])
        return super().forward(payloads)


def request(query: str, docs: int = 3, words: int = 3) -> RerankRequest:
    documents = tuple(
        Document(f"{query}-{i}", " ".join([query] * (i + 1) + ["x"] * words)) for i in range(docs)
    )
    return RerankRequest(query, documents, None, "", 512, 2048)


async def run_all(scheduler: Scheduler, backend: FakeBackend, queries: list[str]) -> list[Any]:
    plans = [backend.plan_rerank(request(q)) for q in queries]
    return await asyncio.gather(*(scheduler.run(p, None) for p in plans), return_exceptions=True)


def make(backend: FakeBackend, **limits: int) -> Scheduler:
    settings = {"max_batch_tokens": 10_000, "max_batch_sequences": 64, "max_queue": 64}
    settings.update(limits)
    scheduler = Scheduler(backend, **settings)
    scheduler.start()
    return scheduler


def test_concurrent_requests_share_forward_passes_and_get_their_own_results() -> None:
    backend = RecordingBackend(forward_s=0.05)
    scheduler = make(backend)
    queries = [f"q{i}" for i in range(8)]
    try:
        results = asyncio.run(run_all(scheduler, backend, queries))
    finally:
        scheduler.stop()
    batches = list(backend.batches)
    for query, (outcome, timings) in zip(queries, results, strict=True):
        alone = run_plan(backend, backend.plan_rerank(request(query)))
        assert isinstance(outcome, RerankOutcome)
        assert [(d.id, d.score) for d in outcome.scored] == [(d.id, d.score) for d in alone.scored]
        assert timings.compute_ms > 0
    # The first request runs alone; the seven that queued behind it share a pass.
    assert len(batches) < len(queries)
    assert max(len(set(batch)) for batch in batches) > 1


def test_a_batch_never_exceeds_the_padded_token_budget() -> None:
    backend = RecordingBackend(forward_s=0.01)
    sizes: list[int] = []
    original = backend.forward

    def measure(payloads: list[Any]) -> list[Any]:
        sizes.append(max(len(q) + len(d) for q, d in payloads) * len(payloads))
        return original(payloads)

    backend.forward = measure  # type: ignore[method-assign]
    scheduler = make(backend, max_batch_tokens=20)
    try:
        results = asyncio.run(run_all(scheduler, backend, [f"q{i}" for i in range(6)]))
    finally:
        scheduler.stop()
    assert all(isinstance(r, tuple) for r in results)
    assert max(sizes) <= 20
    assert sum(len(b) for b in backend.batches) == 18  # every sequence ran exactly once


def test_a_full_queue_refuses_with_resource_exhausted() -> None:
    backend = RecordingBackend(forward_s=0.2)
    scheduler = make(backend, max_queue=2)
    try:
        results = asyncio.run(run_all(scheduler, backend, ["a", "b", "c"]))
    finally:
        scheduler.stop()
    refused = [r for r in results if isinstance(r, ResourceExhausted)]
    assert len(refused) == 1
    assert "queue full" in refused[0].message
    assert sum(isinstance(r, tuple) for r in results) == 2


def test_a_request_past_its_deadline_never_reaches_the_model() -> None:
    backend = RecordingBackend(forward_s=0.3)
    scheduler = make(backend, max_batch_sequences=3)

    async def scenario() -> list[Any]:
        busy = asyncio.ensure_future(scheduler.run(backend.plan_rerank(request("busy")), None))
        await asyncio.sleep(0.05)  # "busy" is in the model now
        late = scheduler.run(backend.plan_rerank(request("late")), time.monotonic() + 0.05)
        return await asyncio.gather(busy, late, return_exceptions=True)

    try:
        busy, late = asyncio.run(scenario())
    finally:
        scheduler.stop()
    assert isinstance(busy, tuple)
    assert isinstance(late, DeadlineExceeded)
    assert all(("late",) not in batch for batch in backend.batches)


def test_a_cancelled_request_is_dropped_before_compute() -> None:
    backend = RecordingBackend(forward_s=0.3)
    scheduler = make(backend, max_batch_sequences=3)

    async def scenario() -> None:
        busy = asyncio.ensure_future(scheduler.run(backend.plan_rerank(request("busy")), None))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(scheduler.run(backend.plan_rerank(request("gone")), None))
        await asyncio.sleep(0.01)
        gone.cancel()
        await busy
        with pytest.raises(asyncio.CancelledError):
            await gone
        await asyncio.sleep(0.35)  # give the worker time to reach (and drop) it

    try:
        asyncio.run(scenario())
        assert scheduler.depth == 0  # the slot of the dropped request was freed
    finally:
        scheduler.stop()
    assert all(("gone",) not in batch for batch in backend.batches)
    assert Cancelled.status == "CANCELLED"


class FaultyBackend(RecordingBackend):
    """The fake backend with its fault words on (see backends/fake.py)."""

    def __init__(self, forward_s: float = 0.0, hang_s: float = 0.5) -> None:
        FakeBackend.__init__(self, f"forward_s={forward_s}&faults=on&hang_s={hang_s}", 512, 2048)
        self.batches = []


def test_a_failing_forward_pass_fails_its_batch_only_and_the_worker_carries_on() -> None:
    for fault in ("raiseerror", "shortoutput"):
        backend = FaultyBackend()
        scheduler = make(backend)
        try:
            failed = asyncio.run(run_all(scheduler, backend, [fault]))[0]
            assert isinstance(failed, Internal) and "incident" in failed.message
            good = asyncio.run(run_all(scheduler, backend, ["fine", "also"]))
            assert all(isinstance(result, tuple) for result in good)
            assert scheduler.depth == 0 and not scheduler.dead
        finally:
            scheduler.stop()


def test_a_partly_batched_request_is_withdrawn_whole() -> None:
    """Three sequences, two per pass: when the first pass fails, the third never runs."""
    backend = FaultyBackend()
    scheduler = make(backend, max_batch_sequences=2)
    try:
        (failed,) = asyncio.run(run_all(scheduler, backend, ["raiseerror"]))
        asyncio.run(run_all(scheduler, backend, ["after"]))
    finally:
        scheduler.stop()
    assert isinstance(failed, Internal)
    assert [len(batch) for batch in backend.batches if ("raiseerror",) in batch] == [2]


def test_cancelled_and_expired_requests_free_their_slots_at_once() -> None:
    backend = RecordingBackend(forward_s=0.4)
    scheduler = make(backend, max_queue=3, max_batch_sequences=3)

    async def scenario() -> list[Any]:
        busy = asyncio.ensure_future(scheduler.run(backend.plan_rerank(request("busy")), None))
        await asyncio.sleep(0.05)  # in the model for 0.4 s
        gone = asyncio.ensure_future(scheduler.run(backend.plan_rerank(request("gone")), None))
        late = asyncio.ensure_future(
            scheduler.run(backend.plan_rerank(request("late")), time.monotonic() + 0.05)
        )
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        assert scheduler.depth == 2  # the cancelled one left at once, while the worker is busy
        await asyncio.sleep(0.1)  # "late" expired behind the head: the next admission drops it
        after = await scheduler.run(backend.plan_rerank(request("after")), None)
        return [await busy, after, *(await asyncio.gather(gone, late, return_exceptions=True))]

    try:
        busy, after, gone, late = asyncio.run(scenario())
    finally:
        scheduler.stop()
    assert isinstance(busy, tuple) and isinstance(after, tuple)
    assert isinstance(gone, asyncio.CancelledError) and isinstance(late, DeadlineExceeded)
    assert all(("gone",) not in batch and ("late",) not in batch for batch in backend.batches)


@pytest.mark.parametrize("per_pass", [1, 64])
def test_a_dead_worker_answers_unavailable_and_tells_the_server(per_pass: int) -> None:
    """Whether the dying pass held all of a request or part of it, every request is answered."""
    backend = FaultyBackend(forward_s=0.1)
    deaths: list[bool] = []
    scheduler = Scheduler(backend, 10_000, per_pass, 64, on_death=lambda: deaths.append(True))
    scheduler.start()
    try:
        killed, waiting = asyncio.run(run_all(scheduler, backend, ["killworker", "waiting"]))
        (later,) = asyncio.run(run_all(scheduler, backend, ["later"]))
    finally:
        scheduler.stop()
    assert deaths == [True] and scheduler.dead
    assert isinstance(waiting, Unavailable) and isinstance(later, Unavailable)
    # The request in the dying pass was never answered by the model: it is failed with the rest.
    assert isinstance(killed, Unavailable)
