"""Soak: N clients for T minutes against the HTTP bridge, the scoring server and
a real engine, each process on its own, with optional faults.

    .venv/bin/python bench/soak.py                                # 64 clients, 5 minutes, Elasticsearch
    .venv/bin/python bench/soak.py --clients 8 --minutes 1 --fault reranker-pause

The engine is a local node (or `--engine-url`) holding XQuAD-R's English
passages; the server is `rerank-bridge serve` (MiniLM by default); the bridge is
`rerank-bridge proxy`. Every client loops over the English questions, sending
reranked searches (BM25 window of `--window`, the whole window asked for) and,
one in `--plain-every`, a plain search. Each 200 answer is checked against the
window the engine itself returns for that question: a hit missing is lost, a
hit twice is duplicated. A fault (`reranker-pause`, `engine-pause`) stops that
process with SIGSTOP for `--fault-seconds` every `--fault-every` seconds; a
reranker paused past the bridge's `--reranker-timeout` makes fail-open answers
(the engine's window, flagged), which are checked the same way.
RSS of the bridge and the server is read after a warm-up and at the end.
Prints one JSON document (progress on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from rerank_connectors import local_engines
from rerank_connectors.dialects import bulk_helper, engine_client
from rerank_server.config import BUILTIN_MINILM
from workload import progress, start_server, summarise

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad-r" / "en"
INDEX = "soak"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for {pid}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def prepare_engine(url: str, kind: str, window: int) -> tuple[list[str], dict[str, set[str]]]:
    """Indexes the passages; returns the questions and each one's window as the engine ranks it."""
    client = engine_client(kind, url)
    if client.indices.exists(index=INDEX):
        client.indices.delete(index=INDEX)
    client.indices.create(index=INDEX, body={"mappings": {"properties": {"text": {"type": "text"}}}})
    docs = read_jsonl(DATA / "corpus.jsonl")
    bulk_helper(kind)(
        client, ({"_index": INDEX, "_id": d["_id"], "text": d["text"]} for d in docs), refresh=True
    )
    questions = [q["text"] for q in read_jsonl(DATA / "queries.jsonl")]
    windows = {}
    for question in questions:
        response = client.search(index=INDEX, body={"query": {"match": {"text": question}}, "size": window})
        windows[question] = {hit["_id"] for hit in dict(getattr(response, "body", response))["hits"]["hits"]}
    client.close()
    return questions, windows


def start_bridge(
    engine_url: str, reranker: str, kind: str, reranker_timeout: float
) -> tuple[subprocess.Popen[str], str]:
    port = local_engines.free_port()
    config = {
        "engine": {"url": engine_url, "kind": kind},
        "reranker": {"address": reranker, "timeout": reranker_timeout},
        "listen": {"host": "127.0.0.1", "port": port},
    }
    path = Path(tempfile.mkdtemp(prefix="soak-")) / "bridge.json"
    path.write_text(json.dumps(config))
    command = [str(Path(sys.executable).parent / "rerank-bridge"), "proxy", "--config", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=2):
                return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"bridge exited with {process.returncode}") from None
            time.sleep(0.1)
    raise RuntimeError("bridge did not start")


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.lost = 0
        self.duplicated = 0
        self.checked = 0


async def client(
    number: int,
    url: str,
    questions: list[str],
    windows: dict[str, set[str]],
    args: argparse.Namespace,
    until: float,
    tally: Tally,
) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    rerank = {"rerank_bridge": {"rerank": {"fields": ["text"], "rank_window_size": args.window}}}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        sent = 0
        while time.monotonic() < until:
            question = questions[(number * 7919 + sent) % len(questions)]
            body: dict[str, Any] = {"query": {"match": {"text": question}}, "size": args.window}
            if sent % args.plain_every:
                body["ext"] = rerank
            sent += 1
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/{INDEX}/_search", json=body) as response:
                    payload = await response.read()
                    status = str(response.status)
            except (TimeoutError, aiohttp.ClientError) as error:
                status, payload = type(error).__name__, b""
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[status] += 1
            if status != "200":
                continue
            answer = json.loads(payload)
            got = [hit["_id"] for hit in answer["hits"]["hits"]]
            tally.lost += len(windows[question] - set(got))
            tally.duplicated += len(got) - len(set(got))
            tally.checked += 1
            summary = answer.get("rerank")
            tally.outcomes[
                "plain" if summary is None else "reranked" if summary["reranked"] else "fail_open"
            ] += 1


def inject_faults(
    send_signal: Callable[[int], None], every: float, seconds: float, stop: threading.Event, log: list[float]
) -> None:
    """Pauses a process (SIGSTOP) for `seconds` every `every` seconds until stopped."""
    while not stop.wait(every):
        send_signal(signal.SIGSTOP)
        log.append(time.monotonic())
        stop.wait(seconds)
        send_signal(signal.SIGCONT)


async def run_load(
    url: str, questions: list[str], windows: dict[str, set[str]], args: argparse.Namespace, seconds: float
) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(client(n, url, questions, windows, args, until, tally) for n in range(args.clients))
    )
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--engine", choices=local_engines.KINDS, default="elasticsearch")
    parser.add_argument("--engine-url", help="an engine you run (else a local node is started)")
    parser.add_argument("--model", default="", help="the server's --model (default: the packaged MiniLM)")
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument(
        "--reranker-timeout",
        type=float,
        default=30.0,
        help="the bridge's; a pause past it makes fail-open answers",
    )
    parser.add_argument("--plain-every", type=int, default=10, help="one plain search in this many")
    parser.add_argument("--fault", choices=["none", "reranker-pause", "engine-pause"], default="none")
    parser.add_argument("--fault-every", type=float, default=30.0)
    parser.add_argument("--fault-seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    if args.fault == "engine-pause" and args.engine_url:
        parser.error("engine-pause needs the local node this benchmark starts (no --engine-url)")
    node = None if args.engine_url else local_engines.start(args.engine)
    engine_url = args.engine_url or node.url  # type: ignore[union-attr]
    server = bridge = None
    try:
        progress(f"engine at {engine_url}; indexing")
        questions, windows = prepare_engine(engine_url, args.engine, args.window)
        server, address = start_server(args.model or BUILTIN_MINILM, [])
        bridge, url = start_bridge(engine_url, address, args.engine, args.reranker_timeout)
        progress(f"warm-up {args.warmup_seconds:.0f} s with {args.clients} clients")
        asyncio.run(run_load(url, questions, windows, args, args.warmup_seconds))
        rss_start = {"bridge": rss_mb(bridge.pid), "server": rss_mb(server.pid)}
        stop, paused_at = threading.Event(), []
        if args.fault != "none":
            victim = server if args.fault == "reranker-pause" else None
            send_signal = victim.send_signal if victim else lambda sig: os.killpg(node.process.pid, sig)  # type: ignore[union-attr]
            fault = (send_signal, args.fault_every, args.fault_seconds, stop, paused_at)
            threading.Thread(target=inject_faults, args=fault, daemon=True).start()
        progress(f"soak {args.minutes} min")
        started = time.monotonic()
        tally = asyncio.run(run_load(url, questions, windows, args, args.minutes * 60))
        wall = time.monotonic() - started
        stop.set()
        rss_end = {"bridge": rss_mb(bridge.pid), "server": rss_mb(server.pid)}
    finally:
        for process in (bridge, server):
            if process is not None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait()
        if node is not None:
            node.stop()
    result = {
        "benchmark": "soak",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {
            "clients": args.clients,
            "minutes": args.minutes,
            "engine": args.engine,
            "model": args.model or "all-MiniLM-L6-v2 (packaged)",
            "window": args.window,
            "reranker_timeout_s": args.reranker_timeout,
            "plain_every": args.plain_every,
            "fault": args.fault,
            "fault_every_s": args.fault_every,
            "fault_seconds": args.fault_seconds,
        },
        "latency": summarise(tally.latencies, wall, args.window),
        "statuses": dict(tally.statuses),
        "outcomes": dict(tally.outcomes),
        "answers_checked": tally.checked,
        "hits_lost": tally.lost,
        "hits_duplicated": tally.duplicated,
        "faults_injected": len(paused_at),
        "rss_mb": {
            "start": rss_start,
            "end": rss_end,
            "growth_percent": {
                k: round(100 * (rss_end[k] - rss_start[k]) / rss_start[k], 2) for k in rss_start
            },
        },
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
