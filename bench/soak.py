"""Soak: N clients for T minutes against the HTTP bridge, the scoring server and a
real engine, with faults.

    .venv/bin/python bench/soak.py                                 # 64 clients, 5 minutes, Elasticsearch
    .venv/bin/python bench/soak.py --clients 8 --minutes 1 --fault reranker-pause
    .venv/bin/python bench/soak.py --containers --engine opensearch \\
        --faults reranker-kill,reranker-rolling-restart,engine-node-kill

Processes (the default): a local engine node (or `--engine-url`), `rerank-bridge serve`
(MiniLM by default) and `rerank-bridge proxy`, each a process of its own. A fault
(`reranker-pause`, `engine-pause`) stops one with SIGSTOP for `--fault-seconds` every
`--fault-every` seconds; a reranker paused past the bridge's `--reranker-timeout` makes
fail-open answers (the engine's window, flagged), which are checked the same way.
`slow-clients` mixes in `--slow-clients` connections that each send headers and part
of a body and then nothing: the bridge answers them 408 after `--body-timeout`, and
they start over at once, so that many are held for the whole phase while the clients
above go on (their latency, against the warm-up's, is what this fault measures).

Containers (`--containers`, images from a registry or tools/offline_images.py): a
cluster of `--nodes` engine nodes holding an index of `--shards` shards with
`--replicas` replicas, two scoring servers (the CPU image) and the bridge image calling
both, on a network of the run's own. Where an image is missing, Ryuk's among them (where no
registry answers, run with TESTCONTAINERS_RYUK_DISABLED=true), it stops before it starts
anything, with one line naming it. The faults run one after another, each a phase:
- `reranker-kill`: one server is killed, and started again `--fault-seconds` later;
- `reranker-rolling-restart`: each server in turn gets SIGTERM (it drains) and starts
  again; the next goes once the bridge sends calls to the one that came back;
- `engine-node-kill`: the last node is killed (not the one the bridge talks to); the
  load goes on for `--fault-seconds` on the cluster left.

Every client loops over XQuAD-R's English questions, sending reranked searches (BM25
window of `--window`, the whole window asked for) and, one in `--plain-every`, a plain
search. Each 200 answer is checked against the window the engine gave for that question
before any fault: every hit scoring above the window's last score must come back (hits
tied with it may trade places), none twice. Where the engine reports failed shards in
`_shards`, which the bridge passes on, hits living on those shards may be missing; any
other missing hit is lost. Prints one JSON document (progress on stderr), with each
phase counted on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.config import BUILTIN_MINILM
from workload import progress, start_server, summarise

sys.path.insert(0, str(checkout.root() / "tools"))  # offline_images, the images the soak runs
DATA = checkout.shared_data("xquad-r", "en")
INDEX = "soak"
CONTAINER_FAULTS = ("reranker-kill", "reranker-rolling-restart", "engine-node-kill")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for {pid}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@dataclass(frozen=True)
class Window:
    """One question's first-stage window: the hits that must come back (scoring above
    the window's last score) and those tied with its last score (any may)."""

    required: frozenset[str]
    tied: frozenset[str]


@dataclass(frozen=True)
class Corpus:
    questions: list[str]
    windows: dict[str, Window]
    shard_of: dict[str, int]  # where each passage lives


def prepare_engine(url: str, kind: str, window: int, shards: int = 1, replicas: int = 0) -> Corpus:
    """Indexes the passages; returns the questions, each one's window as the engine ranks
    it, and which shard holds each passage."""
    client = DIALECTS[kind].client(url)
    if client.indices.exists(index=INDEX):
        client.indices.delete(index=INDEX)
    settings = {"number_of_shards": shards, "number_of_replicas": replicas}
    body = {"settings": settings, "mappings": {"properties": {"text": {"type": "text"}}}}
    client.indices.create(index=INDEX, body=body)
    docs = read_jsonl(DATA / "corpus.jsonl")
    DIALECTS[kind].bulk_helper()(
        client, ({"_index": INDEX, "_id": d["_id"], "text": d["text"]} for d in docs), refresh=True
    )
    wanted = "green" if replicas else "yellow"  # the REST call: opensearch-py reads timeout= as its own
    with urllib.request.urlopen(
        f"{url}/_cluster/health/{INDEX}?wait_for_status={wanted}&timeout=120s", timeout=130
    ):
        pass

    def hits(body: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
        response = client.search(index=INDEX, body=body, **params)
        return list(dict(getattr(response, "body", response))["hits"]["hits"])

    questions = [q["text"] for q in read_jsonl(DATA / "queries.jsonl")]
    windows = {}
    for question in questions:
        # One past the window, to see whether the last place is tied with what follows.
        found = hits({"query": {"match": {"text": question}}, "size": window + 1})
        last = found[min(window, len(found)) - 1]["_score"] if found else 0.0
        kept = found[:window]
        windows[question] = Window(
            frozenset(h["_id"] for h in kept if h["_score"] > last),
            frozenset(h["_id"] for h in found if h["_score"] == last),
        )
    shard_of = {}
    for shard in range(shards):
        everything = {"query": {"match_all": {}}, "size": len(docs), "_source": False}
        for hit in hits(everything, preference=f"_shards:{shard}"):
            shard_of[hit["_id"]] = shard
    client.close()
    return Corpus(questions, windows, shard_of)


@dataclass
class PhaseTally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    answers_checked: int = 0
    hits_lost: int = 0
    hits_duplicated: int = 0
    hits_foreign: int = 0  # a hit no window held, in an answer with every shard
    partial_answers: int = 0  # answers whose `_shards` report failed shards
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0

    def report(self, window: int) -> dict[str, Any]:
        wall = (self.ended or time.monotonic()) - self.started
        return {
            "seconds": round(wall, 1),
            "latency": summarise(self.latencies, wall, window) if self.latencies else {},
            "statuses": dict(self.statuses),
            "outcomes": dict(self.outcomes),
            "answers_checked": self.answers_checked,
            "hits_lost": self.hits_lost,
            "hits_duplicated": self.hits_duplicated,
            "hits_foreign": self.hits_foreign,
            "partial_answers": self.partial_answers,
        }


class Tally:
    """Answers counted in the phase that was current when each request was sent."""

    def __init__(self, first_phase: str) -> None:
        self.phases: dict[str, PhaseTally] = {first_phase: PhaseTally()}
        self.current = first_phase

    def enter(self, phase: str) -> None:
        self.phases[self.current].ended = time.monotonic()
        self.phases[phase] = PhaseTally()
        self.current = phase
        progress(f"phase {phase}")

    def check(self, phase: PhaseTally, answer: dict[str, Any], window: Window, corpus: Corpus) -> None:
        got = [hit["_id"] for hit in answer["hits"]["hits"]]
        failed = {failure.get("shard") for failure in answer.get("_shards", {}).get("failures", [])}
        required = {doc for doc in window.required if corpus.shard_of.get(doc) not in failed}
        phase.partial_answers += bool(failed)
        phase.hits_lost += len(required - set(got))
        phase.hits_duplicated += len(got) - len(set(got))
        if not failed:  # with a shard gone, passages from past the window may fill it
            phase.hits_foreign += len(set(got) - window.required - window.tied)
        phase.answers_checked += 1
        summary = answer.get("rerank")
        phase.outcomes[
            "plain" if summary is None else "reranked" if summary["reranked"] else "fail_open"
        ] += 1


async def client(
    number: int, url: str, corpus: Corpus, args: argparse.Namespace, stop: Callable[[], bool], tally: Tally
) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    rerank = {"rerank_bridge": {"rerank": {"fields": ["text"], "rank_window_size": args.window}}}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        sent = 0
        while not stop():
            question = corpus.questions[(number * 7919 + sent) % len(corpus.questions)]
            body: dict[str, Any] = {"query": {"match": {"text": question}}, "size": args.window}
            if sent % args.plain_every:
                body["ext"] = rerank
            sent += 1
            phase = tally.phases[tally.current]
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/{INDEX}/_search", json=body) as response:
                    payload = await response.read()
                    status = str(response.status)
            except (TimeoutError, aiohttp.ClientError) as error:
                status, payload = type(error).__name__, b""
            phase.latencies.append(time.perf_counter() - started)
            phase.statuses[status] += 1
            if status == "200":
                tally.check(phase, json.loads(payload), corpus.windows[question], corpus)


async def slow_client(url: str, stop: Callable[[], bool], answers: Counter[str]) -> None:
    """Holds a connection with a body that never arrives, again and again."""
    host, port = url.removeprefix("http://").split(":")
    head = f"POST /{INDEX}/_search HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
    while not stop():
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"{head}Content-Length: 200\r\n\r\n".encode() + b'{"query": {"match": ')
            await writer.drain()
            status_line = await reader.readline()
            answers[status_line.decode(errors="replace").split(" ")[1] if status_line else "closed"] += 1
            writer.close()
        except OSError as error:
            answers[type(error).__name__] += 1
            await asyncio.sleep(0.1)


async def run_load(
    url: str,
    corpus: Corpus,
    args: argparse.Namespace,
    tally: Tally,
    stop: Callable[[], bool],
    slow: Counter[str] | None = None,
) -> None:
    """The clients until `stop()`; with `slow`, `--slow-clients` held bodies beside them."""
    load = [client(n, url, corpus, args, stop, tally) for n in range(args.clients)]
    held = [slow_client(url, stop, slow) for _ in range(args.slow_clients)] if slow is not None else []
    await asyncio.gather(*load, *held)


def until(seconds: float) -> Callable[[], bool]:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


# --- processes ---------------------------------------------------------------------------


def start_bridge(
    engine_url: str, reranker: str, kind: str, reranker_timeout: float, body_timeout: float
) -> tuple[subprocess.Popen[str], str]:
    port = local_engines.free_port()
    config = {
        "engine": {"url": engine_url, "kind": kind},
        "reranker": {"address": reranker, "timeout": reranker_timeout},
        "listen": {"host": "127.0.0.1", "port": port},
        "limits": {"body_timeout": body_timeout},
    }
    path = Path(tempfile.mkdtemp(prefix="soak-")) / "bridge.json"
    path.write_text(json.dumps(config))
    command = [str(Path(sys.executable).parent / "rerank-bridge"), "proxy", "--config", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"

    def exited() -> str | None:
        return None if process.poll() is None else f"bridge exited with {process.returncode}"

    wait_answering(url, 60, exited)
    return process, url


def wait_answering(url: str, timeout: float, gone: Callable[[], str | None] = lambda: None) -> None:
    """Until the bridge at `url` answers GET /metrics; `gone()` says why it went away, if it did."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=2):
                return
        except OSError:
            if (why := gone()) is not None:
                raise RuntimeError(why) from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bridge at {url} did not answer in {timeout:.0f} s") from None
            time.sleep(0.1)


def inject_pauses(
    send_signal: Callable[[int], None], every: float, seconds: float, stop: threading.Event, log: list[float]
) -> None:
    """Pauses a process (SIGSTOP) for `seconds` every `every` seconds until stopped."""
    while not stop.wait(every):
        send_signal(signal.SIGSTOP)
        log.append(time.monotonic())
        stop.wait(seconds)
        send_signal(signal.SIGCONT)


def soak_processes(args: argparse.Namespace) -> dict[str, Any]:
    if args.fault == "engine-pause" and args.engine_url:
        raise SystemExit("engine-pause needs the local node this benchmark starts (no --engine-url)")
    node = None if args.engine_url else local_engines.start(args.engine)
    engine_url = args.engine_url or node.url  # type: ignore[union-attr]
    server = bridge = None
    try:
        progress(f"engine at {engine_url}; indexing")
        corpus = prepare_engine(engine_url, args.engine, args.window)
        server, address = start_server(args.model or BUILTIN_MINILM, [])
        bridge, url = start_bridge(engine_url, address, args.engine, args.reranker_timeout, args.body_timeout)
        progress(f"warm-up {args.warmup_seconds:.0f} s with {args.clients} clients")
        tally = Tally("warm-up")
        asyncio.run(run_load(url, corpus, args, tally, until(args.warmup_seconds)))
        rss_start = {"bridge": rss_mb(bridge.pid), "server": rss_mb(server.pid)}
        stop, paused_at = threading.Event(), []
        slow: Counter[str] | None = Counter() if args.fault == "slow-clients" else None
        if args.fault in ("reranker-pause", "engine-pause"):
            victim = server if args.fault == "reranker-pause" else None
            send_signal = victim.send_signal if victim else lambda sig: os.killpg(node.process.pid, sig)  # type: ignore[union-attr]
            fault = (send_signal, args.fault_every, args.fault_seconds, stop, paused_at)
            threading.Thread(target=inject_pauses, args=fault, daemon=True).start()
        tally.enter(args.fault)
        asyncio.run(run_load(url, corpus, args, tally, until(args.minutes * 60), slow))
        stop.set()
        tally.phases[tally.current].ended = time.monotonic()
        rss_end = {"bridge": rss_mb(bridge.pid), "server": rss_mb(server.pid)}
    finally:
        for process in (bridge, server):
            if process is not None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait()
        if node is not None:
            node.stop()
    return {
        "phases": {name: phase.report(args.window) for name, phase in tally.phases.items()},
        "faults_injected": len(paused_at),
        "slow_clients": {"held": args.slow_clients, "answers": dict(slow)} if slow is not None else None,
        "rss_mb": {
            "start": rss_start,
            "end": rss_end,
            "growth_percent": {
                k: round(100 * (rss_end[k] - rss_start[k]) / rss_start[k], 2) for k in rss_start
            },
        },
    }


# --- containers --------------------------------------------------------------------------


def serving(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def rerank_calls(metrics_url: str) -> float:
    """Rerank calls a server has answered since it started (its own counter)."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rerank_server_requests_total{") and 'method="Rerank"' in line
    )


class Servers:
    """The scoring-server containers and what the fault schedule does to them."""

    def __init__(self, containers: list[Any]) -> None:
        self.containers = containers

    def address(self, number: int) -> str:
        from rerank_bridge.devtools.engine_containers import host_port

        return f"127.0.0.1:{host_port(self.containers[number], 50051)}"

    def metrics(self, number: int) -> str:
        from rerank_bridge.devtools.engine_containers import host_port

        return f"http://127.0.0.1:{host_port(self.containers[number], 9464)}/metrics"

    def wait_serving(self, number: int, timeout: float = 180) -> float:
        """Until the server says SERVING (its model loaded and warm); returns the deadline."""
        deadline = time.monotonic() + timeout
        while not serving(self.address(number)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"scoring server {number} not SERVING after {timeout:.0f} s")
            time.sleep(0.5)
        return deadline

    def wait_taking_calls(self, number: int, timeout: float = 180) -> None:
        """SERVING, then answering calls the bridge sends it: back in the rotation."""
        deadline = self.wait_serving(number, timeout)
        while rerank_calls(self.metrics(number)) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bridge sent scoring server {number} no call in {timeout:.0f} s")
            time.sleep(0.2)

    def kill(self, number: int, down_seconds: float) -> None:
        self.containers[number].get_wrapped_container().kill()
        time.sleep(down_seconds)
        self.containers[number].get_wrapped_container().start()
        self.wait_taking_calls(number)

    def rolling_restart(self) -> list[int]:
        """SIGTERM (drain), start, back in the rotation; one server after the other.
        Returns each server's exit status from its SIGTERM."""
        exits = []
        for number, container in enumerate(self.containers):
            wrapped = container.get_wrapped_container()
            wrapped.stop(timeout=60)
            wrapped.reload()
            exits.append(int(wrapped.attrs["State"]["ExitCode"]))
            wrapped.start()
            self.wait_taking_calls(number)
        return exits


@contextlib.contextmanager
def container_stack(args: argparse.Namespace) -> Iterator[tuple[str, Corpus, Servers, Any, dict[str, Any]]]:
    """The cluster with its index, two scoring servers and the bridge; yields the bridge's
    URL on loopback, the corpus, the servers, the cluster and what runs where."""
    from offline_images import PROJECT_IMAGES

    from rerank_bridge.devtools.engine_containers import cluster, exited, host_port, project_container

    release = local_engines.release_for(args.engine)
    with cluster(release, nodes=args.nodes) as engines, contextlib.ExitStack() as stack:
        progress(f"{args.nodes}-node {args.engine} cluster at {engines.url}; indexing")
        corpus = prepare_engine(engines.url, args.engine, args.window, args.shards, args.replicas)
        aliases = [f"rerank-{number}" for number in (1, 2)]
        servers = Servers(
            [
                stack.enter_context(
                    project_container(
                        PROJECT_IMAGES["server-cpu"],
                        ["--metrics-port", "9464"],
                        engines.network,
                        alias,
                        (50051, 9464),
                    )
                )
                for alias in aliases
            ]
        )
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-bridge-")))
        folder.chmod(0o755)  # the bridge image runs as an unprivileged user
        config = {
            "engine": {"url": engines.internal_url, "kind": args.engine},
            "reranker": {
                "address": [f"{alias}:50051" for alias in aliases],
                "timeout": args.reranker_timeout,
            },
            "listen": {"host": "0.0.0.0", "port": 8080},
        }
        (folder / "bridge.json").write_text(json.dumps(config))
        (folder / "bridge.json").chmod(0o644)
        bridge = stack.enter_context(
            project_container(
                PROJECT_IMAGES["bridge"],
                ["--config", "/etc/rerank-bridge/bridge.json"],
                engines.network,
                "rerank-bridge",
                (8080,),
                volumes=((str(folder), "/etc/rerank-bridge"),),
            )
        )
        url = f"http://127.0.0.1:{host_port(bridge, 8080)}"
        wait_answering(url, 120, lambda: exited(bridge))
        setup = {
            "engine_image": engines.image,
            "engine_nodes": args.nodes,
            "shards": args.shards,
            "replicas": args.replicas,
            "server_image": PROJECT_IMAGES["server-cpu"],
            "servers": len(aliases),
            "bridge_image": PROJECT_IMAGES["bridge"],
        }
        yield url, corpus, servers, engines, setup


def soak_containers(args: argparse.Namespace) -> dict[str, Any]:
    faults = [fault for fault in args.faults.split(",") if fault]
    unknown = set(faults) - set(CONTAINER_FAULTS)
    if unknown:
        raise SystemExit(f"unknown faults {sorted(unknown)}; known: {', '.join(CONTAINER_FAULTS)}")
    from offline_images import PROJECT_IMAGES

    from rerank_bridge.devtools.engine_containers import ContainersUnavailable, image_for, require_containers

    # Every image first (Ryuk's too), so a missing one stops the soak, in one line, before
    # it starts a cluster.
    engine_image = image_for(local_engines.release_for(args.engine))
    try:
        require_containers([engine_image, PROJECT_IMAGES["server-cpu"], PROJECT_IMAGES["bridge"]])
    except ContainersUnavailable as why:
        raise SystemExit(f"soak --containers: {why}") from None
    with container_stack(args) as (url, corpus, servers, engines, setup):
        # The load starts once both servers have loaded their model: before that the bridge
        # can only fail open, which measures the model's load time, not a fault.
        for number in range(len(servers.containers)):
            servers.wait_serving(number)
        tally = Tally("warm-up")
        done = threading.Event()
        events: dict[str, Any] = {}
        failure: list[BaseException] = []

        def schedule() -> None:
            try:
                for number in range(len(servers.containers)):
                    servers.wait_taking_calls(number)
                time.sleep(args.warmup_seconds)
                tally.enter("steady")
                time.sleep(args.fault_seconds)
                for fault in faults:
                    tally.enter(fault)
                    if fault == "reranker-kill":
                        servers.kill(0, args.fault_seconds)
                    elif fault == "reranker-rolling-restart":
                        events["rolling_restart_exit_codes"] = servers.rolling_restart()
                    else:
                        victim = len(engines.nodes) - 1
                        engines.kill(victim)
                        events["engine_node_killed"] = engines.nodes[victim].get_wrapped_container().name
                        time.sleep(args.fault_seconds)
                    time.sleep(args.settle_seconds)
            except BaseException as error:
                failure.append(error)
            finally:
                tally.phases[tally.current].ended = time.monotonic()
                done.set()

        threading.Thread(target=schedule, daemon=True).start()
        progress(f"soak with {args.clients} clients, faults: {', '.join(faults) or 'none'}")
        asyncio.run(run_load(url, corpus, args, tally, done.is_set))
        if failure:
            raise failure[0]
        live = len(engines.alive())
    return {
        "setup": setup,
        "phases": {name: phase.report(args.window) for name, phase in tally.phases.items()},
        "events": {**events, "engine_nodes_alive_at_end": live},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=5.0, help="processes: the soak after the warm-up")
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--engine", choices=local_engines.KINDS, default="elasticsearch")
    parser.add_argument("--engine-url", help="processes: an engine you run (else a local node is started)")
    parser.add_argument("--model", default="", help="processes: the server's --model (default: MiniLM)")
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument(
        "--reranker-timeout",
        type=float,
        default=30.0,
        help="the bridge's; a pause past it makes fail-open answers",
    )
    parser.add_argument("--plain-every", type=int, default=10, help="one plain search in this many")
    parser.add_argument(
        "--fault", choices=["none", "reranker-pause", "engine-pause", "slow-clients"], default="none"
    )
    parser.add_argument("--slow-clients", type=int, default=200, help="processes: bodies held (slow-clients)")
    parser.add_argument("--body-timeout", type=float, default=30.0, help="processes: the bridge's limit")
    parser.add_argument("--fault-every", type=float, default=30.0, help="processes: seconds between pauses")
    parser.add_argument("--fault-seconds", type=float, default=3.0, help="a pause, a server down, a phase")
    parser.add_argument("--containers", action="store_true", help="a cluster, two servers and the bridge")
    parser.add_argument("--faults", default=",".join(CONTAINER_FAULTS), help="containers: in this order")
    parser.add_argument("--nodes", type=int, default=3, help="containers: engine nodes")
    parser.add_argument("--shards", type=int, default=3, help="containers: the index's shards")
    parser.add_argument("--replicas", type=int, default=1, help="containers: the index's replicas")
    parser.add_argument("--settle-seconds", type=float, default=3.0, help="containers: after each fault")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    found = soak_containers(args) if args.containers else soak_processes(args)
    phases = found["phases"].values()
    result = {
        "benchmark": "soak",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {
            "clients": args.clients,
            "engine": args.engine,
            "window": args.window,
            "reranker_timeout_s": args.reranker_timeout,
            "plain_every": args.plain_every,
            **(
                {"faults": args.faults, "fault_seconds": args.fault_seconds}
                if args.containers
                else {
                    "minutes": args.minutes,
                    "model": args.model or "all-MiniLM-L6-v2 (packaged)",
                    "fault": args.fault,
                    "fault_every_s": args.fault_every,
                    "fault_seconds": args.fault_seconds,
                }
            ),
        },
        "totals": {
            key: sum(phase[key] for phase in phases)
            for key in ("answers_checked", "hits_lost", "hits_duplicated", "hits_foreign", "partial_answers")
        },
        **found,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
