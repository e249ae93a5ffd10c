"""The bridge when what stands behind it fails: the engine stopped or paused
past the bridge's timeout (a node of its own, so the session's engine is not
touched), the scoring server killed or paused (a server process of its own).
Each answer is checked for its status, an Elasticsearch-shaped body, the time
it took, and, where the search still answers, that no hit is lost or repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.devtools import local_engines
from rerank_bridge.search.dialects import DIALECTS
from support.bridge_runner import RunningBridge
from support.live_fixtures import Corpus, Engine, unavailable
from support.raw_http import RawResponse, send
from support.server_process import start as start_server

pytestmark = [pytest.mark.live, pytest.mark.engines("elasticsearch")]
TIMEOUT = 2.0  # the bridge's engine and reranker timeouts here
SLACK = 1.5  # seconds a fault answer may take past its timeout
JSON = {"Content-Type": "application/json"}
WINDOW = 10


def post(bridge: RunningBridge, path: str, body: dict[str, Any]) -> tuple[RawResponse, float]:
    started = time.monotonic()
    answer = send(bridge.port, "POST", path, JSON, json.dumps(body).encode())
    return answer, time.monotonic() - started


def assert_error(answer: RawResponse, status: int, kind: str) -> None:
    assert answer.status == status, answer
    assert answer.headers["x-elastic-product"] == "Elasticsearch" and answer.headers["x-request-id"]
    error = answer.json()["error"]
    assert (
        error["type"] == kind and error["root_cause"][0]["type"] == kind and answer.json()["status"] == status
    )


def ids(body: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in body["hits"]["hits"]]


@pytest.fixture(scope="module")
def own_engine(corpus: Corpus) -> Iterator[local_engines.EngineNode]:
    """An Elasticsearch node this module may pause and stop, with the English passages."""
    if os.environ.get("ES_URL"):
        unavailable("engine faults need a local node this test can pause and stop (ES_URL is set)")
    try:
        node = local_engines.start("elasticsearch")
    except Exception as error:
        unavailable(f"cannot start a local elasticsearch node: {error}")
    client = DIALECTS["elasticsearch"].client(node.url)
    english = [doc for doc in corpus.docs if doc["metadata"]["lang"] == "en"]
    DIALECTS["elasticsearch"].bulk_helper()(
        client, ({"_index": "passages", "_id": d["_id"], "text": d["text"]} for d in english), refresh=True
    )
    yield node
    client.close()
    node.stop()


def _signal(node: local_engines.EngineNode, signum: int) -> None:
    os.killpg(node.process.pid, signum)


@pytest.fixture
def bridge_to_own_engine(
    own_engine: local_engines.EngineNode, scoring_server: Any
) -> Iterator[RunningBridge]:
    config = BridgeConfig(engine_url=own_engine.url, reranker=scoring_server.address, engine_timeout=TIMEOUT)
    with RunningBridge(config) as bridge:
        yield bridge


def _plain_and_reranked(corpus: Corpus) -> tuple[dict[str, Any], dict[str, Any]]:
    plain = {"query": {"match": {"text": str(corpus.queries[1]["text"])}}, "size": WINDOW}
    return plain, {**plain, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}


def test_engine_paused_past_the_timeout_answers_504_in_time(
    own_engine: local_engines.EngineNode, bridge_to_own_engine: RunningBridge, corpus: Corpus
) -> None:
    bridge, (plain, reranked) = bridge_to_own_engine, _plain_and_reranked(corpus)
    assert post(bridge, "/passages/_search", plain)[0].status == 200
    _signal(own_engine, signal.SIGSTOP)
    try:
        for body in (plain, reranked):
            answer, took = post(bridge, "/passages/_search", body)
            assert_error(answer, 504, "engine_timeout_exception")
            assert TIMEOUT - 0.2 < took < TIMEOUT + SLACK
    finally:
        _signal(own_engine, signal.SIGCONT)
    answer, _ = post(bridge, "/passages/_search", plain)
    direct = DIALECTS["elasticsearch"].client(own_engine.url).search(index="passages", body=plain)
    assert answer.status == 200 and ids(answer.json()) == ids(dict(direct.body))


def test_engine_stopped_answers_502_at_once(
    own_engine: local_engines.EngineNode, bridge_to_own_engine: RunningBridge, corpus: Corpus
) -> None:
    bridge = bridge_to_own_engine
    own_engine.stop()
    for body in _plain_and_reranked(corpus):
        answer, took = post(bridge, "/passages/_search", body)
        assert_error(answer, 502, "engine_unreachable_exception")
        assert took < SLACK
    started = time.monotonic()
    root = send(bridge.port, "GET", "/")
    assert_error(root, 502, "engine_unreachable_exception")
    assert time.monotonic() - started < SLACK


@pytest.fixture
def own_reranker() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A scoring server process of its own (the fake model: the fault is the process's)."""
    process, address = start_server("--model", "fake")
    yield process, address
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.kill()
    process.wait()


def _searches(engine: Engine, query: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    plain = {"query": {"match": {"text": query}}, "size": WINDOW}
    rerank = {"fields": ["text"], "rank_window_size": WINDOW}
    fail_open = {**plain, "ext": {"rerank_bridge": {"rerank": rerank}}}
    fail_closed = {**plain, "ext": {"rerank_bridge": {"rerank": {**rerank, "fail_open": False}}}}
    return plain, fail_open, fail_closed


def _first_stage_kept(answer: RawResponse, direct: dict[str, Any], code: str) -> None:
    """Fail-open: the engine's window, in its order, each hit once, flagged with the reason."""
    assert answer.status == 200, answer
    body = answer.json()
    assert body["rerank"]["reranked"] is False and body["rerank"]["error"].startswith(code)
    assert ids(body) == ids(direct) and len(set(ids(body))) == len(ids(body))
    assert [hit["_score"] for hit in body["hits"]["hits"]] == [
        hit["_score"] for hit in direct["hits"]["hits"]
    ]


@pytest.mark.parametrize("fault", ["killed", "paused"])
def test_reranker_fault_falls_back_or_fails_closed_in_time(
    fault: str, engine: Engine, corpus: Corpus, own_reranker: tuple[subprocess.Popen[str], str]
) -> None:
    process, address = own_reranker
    config = BridgeConfig(engine_url=engine.url, reranker=address, reranker_timeout=TIMEOUT)
    plain, fail_open, fail_closed = _searches(engine, str(corpus.queries[2]["text"]))
    path = f"/{engine.index}/_search"
    direct = dict(getattr(r := engine.client.search(index=engine.index, body=plain), "body", r))
    with RunningBridge(config) as bridge:
        answer, _ = post(bridge, path, fail_open)
        assert answer.json()["rerank"]["reranked"] is True
        process.send_signal(signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        if fault == "killed":
            process.wait()
        code, status, kind = (
            ("UNAVAILABLE", 503, "rerank_unavailable_exception")
            if fault == "killed"
            else ("DEADLINE_EXCEEDED", 504, "rerank_unavailable_exception")
        )
        bound = (TIMEOUT if fault == "paused" else 0) + SLACK
        answer, took = post(bridge, path, fail_open)
        _first_stage_kept(answer, direct, code)
        assert took < bound
        answer, took = post(bridge, path, fail_closed)
        assert_error(answer, status, kind)
        assert took < bound
        if fault == "paused":
            process.send_signal(signal.SIGCONT)
            answer, _ = post(bridge, path, fail_open)
            assert answer.json()["rerank"]["reranked"] is True
            assert sorted(ids(answer.json())) == sorted(ids(direct))
