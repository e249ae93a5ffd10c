"""Several scoring servers behind one client, as the bridge and the connectors run
them: calls are spread over all of them, a replica that is not SERVING (loading its
model) is sent none, and neither a replica killed mid-run nor a rolling restart of
every replica under load fails a call (the client moves a call that finds its
server UNAVAILABLE to the next one: scoring is idempotent)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter

from rerank_bridge.devtools.local_engines import free_port
from rerank_bridge.search.client import AsyncRerankClient, RerankClient
from support.server_process import launch, start, wait_serving

DOCS = [("a", "the river"), ("b", "a city by the river"), ("c", "mountains")]
EXPECTED = ["b", "a", "c"]


def test_one_replica_killed_mid_run_loses_no_request() -> None:
    servers = [start("--model", "fake?forward_s=0.01", "--model-name", f"replica-{i}") for i in range(3)]
    try:
        served: Counter[str] = Counter()
        failures: list[BaseException] = []
        lock = threading.Lock()
        with RerankClient([address for _, address in servers], timeout=10) as client:

            def worker(calls: int) -> None:
                for _ in range(calls):
                    try:
                        ranking = client.rerank("river city", DOCS)
                        assert [d.id for d in ranking.documents] == EXPECTED
                        with lock:
                            served[ranking.model] += 1
                    except BaseException as error:  # collected: the assertion below reports them
                        with lock:
                            failures.append(error)

            threads = [threading.Thread(target=worker, args=(60,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            while sum(served.values()) < 60 and not failures:
                threading.Event().wait(0.01)
            before_kill = dict(served)
            victim, _ = servers[1]
            victim.send_signal(signal.SIGKILL)
            for thread in threads:
                thread.join()
        assert failures == []
        assert sum(served.values()) == 240
        assert set(before_kill) == {"replica-0", "replica-1", "replica-2"}, (
            "round robin never used every replica"
        )
        # After the kill replica-1 answers nothing more (four calls may have been finishing).
        assert served["replica-1"] <= before_kill["replica-1"] + 4
    finally:
        for process, _ in servers:
            process.kill()
            process.wait()


def rerank_calls(metrics_port: int) -> float:
    """Rerank calls the server has answered, whatever their status (its own counter)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = r'^rerank_server_requests_total\{[^}]*method="Rerank"[^}]*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def test_a_replica_that_is_not_serving_is_sent_no_calls() -> None:
    """Health-aware: while one replica loads its model (NOT_SERVING) every call goes to
    the other; once it is SERVING it takes its share (so the counter can see calls)."""
    ready, ready_address = start("--model", "fake", "--model-name", "ready")
    metrics = free_port()
    loading, loading_address = launch(
        "--model", "fake?warmup_s=6", "--model-name", "loading", "--metrics-port", str(metrics)
    )
    try:
        with RerankClient([loading_address, ready_address], timeout=10) as client:
            while_loading = Counter(client.rerank("river city", DOCS).model for _ in range(30))
            assert rerank_calls(metrics) == 0
            wait_serving(loading_address)
            deadline = time.monotonic() + 10  # the client sees the change within its reconnect backoff
            after: Counter[str] = Counter()
            while after["loading"] == 0 and time.monotonic() < deadline:
                after[client.rerank("river city", DOCS).model] += 1
        assert while_loading == {"ready": 30}
        assert after["loading"] > 0 and rerank_calls(metrics) > 0
    finally:
        for process in (ready, loading):
            process.kill()
            process.wait()


def test_a_rolling_restart_under_load_fails_no_call() -> None:
    """Each replica in turn gets SIGTERM (drains, exits 0) and comes back on its port; the
    next goes only once the client sends calls to the one that came back, as a rollout
    waits for each new replica to take traffic."""
    ports = [free_port(), free_port()]
    addresses = [f"127.0.0.1:{port}" for port in ports]

    def serve(port: int, generation: int) -> subprocess.Popen[str]:
        process, _ = start(
            "--model", "fake?forward_s=0.01", "--model-name", f"{port}-{generation}", port=port
        )
        return process

    processes = [serve(port, 0) for port in ports]
    served: Counter[str] = Counter()
    failures: list[BaseException] = []
    wrong: list[list[str]] = []

    async def scenario() -> list[int]:
        stop = asyncio.Event()
        async with AsyncRerankClient(addresses, timeout=10) as client:

            async def caller() -> None:
                while not stop.is_set():
                    try:
                        ranking = await client.rerank("river city", DOCS)
                    except Exception as error:
                        failures.append(error)
                        continue
                    served[ranking.model] += 1
                    if [d.id for d in ranking.documents] != EXPECTED:
                        wrong.append([d.id for d in ranking.documents])

            callers = [asyncio.create_task(caller()) for _ in range(8)]
            while not all(served[f"{port}-0"] for port in ports):  # both take calls before the rollout
                await asyncio.sleep(0.05)
            exits = []
            for i, port in enumerate(ports):
                processes[i].send_signal(signal.SIGTERM)
                exits.append(await asyncio.to_thread(processes[i].wait, 30))
                processes[i] = await asyncio.to_thread(serve, port, 1)
                while not served[f"{port}-1"]:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*callers)
        return exits

    try:
        exits = asyncio.run(scenario())
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert exits == [0, 0]
    assert failures == [] and wrong == []
    assert all(served[f"{port}-{generation}"] for port in ports for generation in (0, 1)), served
