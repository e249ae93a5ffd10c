"""Three server processes behind one client-side round-robin target: calls are
spread over all three, and when one is killed mid-run every call still
succeeds (the client retries UNAVAILABLE on the replicas left)."""

from __future__ import annotations

import signal
import threading
from collections import Counter

from server_process import start

from rerank_connectors.client import RerankClient, replicas

DOCS = [("a", "the river"), ("b", "a city by the river"), ("c", "mountains")]


def test_one_replica_killed_mid_run_loses_no_request() -> None:
    servers = [start("--model", "fake?forward_s=0.01", "--model-name", f"replica-{i}") for i in range(3)]
    try:
        served: Counter[str] = Counter()
        failures: list[BaseException] = []
        lock = threading.Lock()
        with RerankClient(replicas([address for _, address in servers]), timeout=10) as client:

            def worker(calls: int) -> None:
                for _ in range(calls):
                    try:
                        ranking = client.rerank("river city", DOCS)
                        assert [d.id for d in ranking.documents] == ["b", "a", "c"]
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
