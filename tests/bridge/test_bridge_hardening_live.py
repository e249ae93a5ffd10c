"""Defects found by trying the bridge as attackers and users would, each
reproduced against a real engine: answers in the format the caller asked for,
contexts the bridge cannot lose track of, bodies that never arrive, too many
connections, a body without a Content-Type, an answer that is not JSON."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml

from rerank_bridge.bridge.config import DEFAULT_LIMITS, BridgeConfig
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Engine
from support.raw_http import RawResponse, send

pytestmark = pytest.mark.live
JSON = {"Content-Type": "application/json"}
RERANK = {"rerank_bridge": {"rerank": {"fields": ["text"], "rank_window_size": 20}}}


def post(bridge: RunningBridge, path: str, body: Any, headers: dict[str, str] | None = None) -> RawResponse:
    return send(bridge.port, "POST", path, {**JSON, **(headers or {})}, json.dumps(body).encode())


def engine_port(engine: Engine) -> int:
    return int(engine.url.rsplit(":", 1)[1])


def config(engine: Engine, scoring_server: BackgroundServer, **limits: Any) -> BridgeConfig:
    return BridgeConfig(
        engine_url=engine.url, reranker=scoring_server.address, limits=DEFAULT_LIMITS.replace(**limits)
    )


@pytest.fixture(scope="module")
def bridge(engine: Engine, scoring_server: BackgroundServer) -> Iterator[RunningBridge]:
    with RunningBridge(config(engine, scoring_server)) as running:
        yield running


def ids(document: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in document["hits"]["hits"]]


def test_reranked_answers_come_in_the_format_asked_for(engine: Engine, bridge: RunningBridge) -> None:
    body = {"query": {"match": {"text": "river"}}, "size": 10, "ext": RERANK}
    as_json = post(bridge, f"/{engine.index}/_search", body).json()
    for path, headers in (
        (f"/{engine.index}/_search", {"Accept": "application/yaml"}),
        (f"/{engine.index}/_search?format=yaml", {}),
    ):
        answer = post(bridge, path, body, headers)
        assert answer.status == 200 and answer.headers["content-type"].startswith("application/yaml")
        assert ids(yaml.safe_load(answer.body)) == ids(as_json) and as_json["rerank"]["reranked"]
    lines = [{"index": engine.index}, body, {"index": engine.index}, {"query": {"match_all": {}}, "size": 2}]
    ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    headers = {"Content-Type": "application/x-ndjson", "Accept": "application/yaml"}
    mixed = send(bridge.port, "POST", "/_msearch", headers, ndjson)
    assert mixed.status == 200, mixed
    assert [r["status"] for r in yaml.safe_load(mixed.body)["responses"]] == [200, 200]
    compare = send(
        bridge.port, "GET", f"/ui/compare?index={engine.index}&q=river", {"Accept": "application/yaml"}
    )
    assert compare.status == 200 and compare.json()["reranked"]
    # JSON as a second choice is JSON: the engine is asked for JSON alone.
    second = post(bridge, f"/{engine.index}/_search", body, {"Accept": "application/smile, application/json"})
    assert second.status == 200 and ids(second.json()) == ids(as_json)
    scroll = post(bridge, f"/{engine.index}/_search?scroll=1m", {}, {"Accept": "application/cbor, */*"})
    assert scroll.status == 200 and scroll.json()["_scroll_id"]
    for accept in ("application/cbor", "application/smile"):
        refused = post(bridge, f"/{engine.index}/_search", body, {"Accept": accept})
        assert refused.status == 406 and refused.json()["error"]["field"] == "Accept"


def scroll_freed(engine: Engine, scroll_id: str) -> bool:
    """Whether the engine has let a scroll go: clearing it frees nothing."""
    answer = send(
        engine_port(engine),
        "DELETE",
        "/_search/scroll",
        JSON,
        json.dumps({"scroll_id": [scroll_id]}).encode(),
    )
    return answer.status == 404 or answer.json().get("num_freed") == 0


def test_scrolls_opened_in_yaml_are_counted_and_cleared_at_shutdown(
    engine: Engine, scoring_server: BackgroundServer
) -> None:
    """The defect: with a cap of 3, twelve such searches left 24 contexts nobody could clear."""
    opened = []
    with RunningBridge(config(engine, scoring_server, max_open_scrolls=3)) as bridge:
        statuses = []
        for n in range(12):
            path, headers = (
                (f"/{engine.index}/_search?scroll=30m&format=yaml&size=1", {})
                if n % 2
                else (f"/{engine.index}/_search?scroll=30m&size=1", {"Accept": "application/yaml"})
            )
            answer = post(bridge, path, {"query": {"match_all": {}}}, headers)
            statuses.append(answer.status)
            if answer.status == 200:
                opened.append(yaml.safe_load(answer.body)["_scroll_id"])
        assert statuses.count(200) == 3 and statuses.count(429) == 9
        page = post(bridge, "/_search/scroll?format=yaml", {"scroll_id": opened[0], "scroll": "1m"})
        assert page.status == 200 and len(yaml.safe_load(page.body)["hits"]["hits"]) == 1
        opened[0] = yaml.safe_load(page.body)["_scroll_id"]
    assert all(scroll_freed(engine, scroll_id) for scroll_id in opened)


def pit_freed(engine: Engine, pit_id: str) -> bool:
    """Whether the engine has let a point in time go. Elasticsearch: closing it frees
    nothing. OpenSearch answers `successful: true` to closing one it does not know,
    so there it must be missing from the list of every point in time."""
    if engine.kind == "opensearch":
        listed = send(engine_port(engine), "GET", "/_search/point_in_time/_all").json()["pits"]
        return pit_id not in {pit["pit_id"] for pit in listed}
    answer = send(engine_port(engine), "DELETE", "/_pit", JSON, json.dumps({"id": pit_id}).encode())
    return answer.status == 404 or answer.json().get("num_freed") == 0


def test_points_in_time_are_capped_and_closed_at_shutdown(
    engine: Engine, scoring_server: BackgroundServer
) -> None:
    path = (
        f"/{engine.index}/_pit"
        if engine.kind == "elasticsearch"
        else f"/{engine.index}/_search/point_in_time"
    )
    with RunningBridge(config(engine, scoring_server, max_open_points_in_time=2)) as bridge:
        answers = [send(bridge.port, "POST", f"{path}?keep_alive=5m&format=yaml") for _ in range(3)]
        assert [answer.status for answer in answers] == [200, 200, 429]
        opened = [
            yaml.safe_load(answer.body).get("id") or yaml.safe_load(answer.body)["pit_id"]
            for answer in answers[:2]
        ]
        for pit_id in opened:  # open and usable while the bridge runs
            assert (
                post(bridge, "/_search", {"pit": {"id": pit_id, "keep_alive": "1m"}, "size": 1}).status == 200
            )
    assert all(pit_freed(engine, pit_id) for pit_id in opened)


def test_an_msearch_may_use_the_callers_points_in_time(engine: Engine, bridge: RunningBridge) -> None:
    path = (
        f"/{engine.index}/_pit"
        if engine.kind == "elasticsearch"
        else f"/{engine.index}/_search/point_in_time"
    )
    opened = send(bridge.port, "POST", f"{path}?keep_alive=1m").json()
    pit_id = opened.get("id") or opened["pit_id"]
    search = {"pit": {"id": pit_id, "keep_alive": "1m"}, "size": 2, "sort": ["_doc"]}
    ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in ({}, search, {}, search))
    headers = {"Content-Type": "application/x-ndjson"}
    answer = send(bridge.port, "POST", "/_msearch", headers, ndjson)
    assert answer.status == 200 and [len(r["hits"]["hits"]) for r in answer.json()["responses"]] == [2, 2]
    as_yaml = send(bridge.port, "POST", "/_msearch", {**headers, "Accept": "application/yaml"}, ndjson)
    assert as_yaml.status == 200 and len(yaml.safe_load(as_yaml.body)["responses"]) == 2
    # Still the caller's after the msearch, by the id the engine handed back.
    again = post(
        bridge, "/_search", {**search, "pit": {"id": answer.json()["responses"][0].get("pit_id", pit_id)}}
    )
    assert again.status == 200
    stranger = ndjson.replace(pit_id.encode(), b"c29tZW9uZSBlbHNlJ3M=")
    refused = send(bridge.port, "POST", "/_msearch", headers, stranger)
    assert refused.status == 404 and refused.json()["error"]["field"] == "pit.id"


def test_an_msearch_in_points_in_time_takes_filter_path_as_the_engine_does(
    engine: Engine, bridge: RunningBridge
) -> None:
    """The bridge reads such an answer whole for the points in time's new ids, then filters it."""
    opening = "_pit" if engine.kind == "elasticsearch" else "_search/point_in_time"
    pit_ids = [
        (lambda opened: opened.get("id") or opened["pit_id"])(
            send(port, "POST", f"/{engine.index}/{opening}?keep_alive=1m").json()
        )
        for port in (bridge.port, engine_port(engine))
    ]
    headers = {"Content-Type": "application/x-ndjson"}
    answers = []
    for port, pit_id in zip((bridge.port, engine_port(engine)), pit_ids, strict=True):
        search = {"pit": {"id": pit_id, "keep_alive": "1m"}, "size": 2, "sort": ["_doc"]}
        ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in ({}, search))
        for path in ("/_msearch?filter_path=took", "/_msearch?filter_path=responses.hits.hits._id"):
            answers.append(send(port, "POST", path, headers, ndjson))
    bridged, direct = answers[:2], answers[2:]
    assert [a.status for a in bridged] == [a.status for a in direct] == [200, 200]
    assert list(bridged[0].json()) == list(direct[0].json()) == ["took"]
    assert bridged[1].json() == direct[1].json()


def test_an_msearch_applies_its_url_options_to_reranked_searches(
    engine: Engine, bridge: RunningBridge
) -> None:
    """ignore_unavailable in the URL is every search's default, reranked or not."""
    header = {"index": f"{engine.index},no-such-index-here"}
    search = {"query": {"match": {"text": "river"}}, "size": 3}
    ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in (header, {**search, "ext": RERANK}))
    headers = {"Content-Type": "application/x-ndjson"}
    lenient = send(bridge.port, "POST", "/_msearch?ignore_unavailable=true", headers, ndjson)
    assert lenient.status == 200 and lenient.json()["responses"][0]["status"] == 200, lenient
    assert lenient.json()["responses"][0]["rerank"]["reranked"] is True
    strict = send(bridge.port, "POST", "/_msearch", headers, ndjson)
    assert strict.json()["responses"][0]["status"] == 404


def test_one_caller_cannot_take_every_context(engine: Engine, scoring_server: BackgroundServer) -> None:
    limits = DEFAULT_LIMITS.replace(max_open_scrolls=10, max_open_contexts_per_caller=1)
    bridge_config = BridgeConfig(
        engine_url=engine.url,
        reranker=scoring_server.address,
        api_keys=frozenset({"k1", "k2"}),
        limits=limits,
    )
    search = f"/{engine.index}/_search?scroll=1m&size=1"
    with RunningBridge(bridge_config) as bridge:
        first, second, other = (
            post(bridge, search, {}, {"Authorization": f"ApiKey {key}"}) for key in ("k1", "k1", "k2")
        )
        assert (first.status, second.status, other.status) == (200, 429, 200)
        assert "this caller" in second.json()["error"]["reason"]


def test_concurrent_openings_cannot_pass_the_cap(engine: Engine, scoring_server: BackgroundServer) -> None:
    """The defect: twenty concurrent scroll searches against a cap of three all succeeded."""
    with RunningBridge(config(engine, scoring_server, max_open_scrolls=3)) as bridge:
        with ThreadPoolExecutor(20) as pool:
            answers = list(
                pool.map(
                    lambda _: post(
                        bridge, f"/{engine.index}/_search?scroll=1m&size=1", {"query": {"match_all": {}}}
                    ),
                    range(20),
                )
            )
        statuses = sorted(answer.status for answer in answers)
        assert statuses == [200] * 3 + [429] * 17
        opened = [answer.json()["_scroll_id"] for answer in answers if answer.status == 200]
    assert all(scroll_freed(engine, scroll_id) for scroll_id in opened)


def test_a_body_without_content_type_is_refused_as_by_the_engine(
    engine: Engine, bridge: RunningBridge
) -> None:
    body = json.dumps({"query": {"match_all": {}}}).encode()
    direct = send(engine_port(engine), "POST", f"/{engine.index}/_search", {}, body)
    bridged = send(bridge.port, "POST", f"/{engine.index}/_search", {}, body)
    assert direct.status == bridged.status == 406
    assert bridged.json()["error"]["field"] == "Content-Type"
    # No body, no Content-Type needed: as on the engine.
    assert send(bridge.port, "GET", f"/{engine.index}/_search").status == 200


def test_suggest_parameters_on_a_reranked_search_reach_the_first_stage(
    engine: Engine, bridge: RunningBridge
) -> None:
    params = "suggest_field=text&suggest_text=rivr&suggest_mode=always&suggest_size=2"
    body = {"query": {"match": {"text": "river"}}, "size": 5}
    direct = send(
        engine_port(engine), "POST", f"/{engine.index}/_search?{params}", JSON, json.dumps(body).encode()
    )
    reranked = post(bridge, f"/{engine.index}/_search?{params}", {**body, "ext": RERANK})
    assert reranked.status == direct.status
    if direct.status == 200:
        assert reranked.json().get("suggest") == direct.json().get("suggest")


@pytest.mark.engines("elasticsearch")
def test_an_msearch_with_a_reranked_item_keeps_the_engines_warning(
    engine: Engine, bridge: RunningBridge
) -> None:
    """ignore_throttled is deprecated: Elasticsearch warns in a Warning header."""
    search = {"query": {"match": {"text": "river"}}, "size": 3}

    def ndjson(*lines: Any) -> bytes:
        return b"".join(json.dumps(line).encode() + b"\n" for line in lines)

    path, headers = (
        f"/{engine.index}/_msearch?ignore_throttled=false",
        {"Content-Type": "application/x-ndjson"},
    )
    direct = send(engine_port(engine), "POST", path, headers, ndjson({}, search, {}, search))
    bridged = send(bridge.port, "POST", path, headers, ndjson({}, {**search, "ext": RERANK}, {}, search))
    assert bridged.status == direct.status == 200
    assert "ignore_throttled" in direct.headers["warning"]
    assert bridged.headers.get("warning") == direct.headers["warning"]
    assert bridged.json()["responses"][0]["rerank"]["reranked"] is True
    # Every search reranked: the warning comes from their first stages, which get the parameter.
    reranked = {**search, "ext": RERANK}
    all_reranked = send(bridge.port, "POST", path, headers, ndjson({}, reranked, {}, reranked))
    assert all_reranked.status == 200 and "ignore_throttled" in all_reranked.headers.get("warning", "")


@pytest.mark.engines("elasticsearch")
def test_source_exclude_vectors_on_a_reranked_search(engine: Engine, bridge: RunningBridge) -> None:
    """Elasticsearch 9.1 added the parameter; older releases refuse it, through the bridge as directly."""
    body = {"query": {"match": {"text": "river"}}, "size": 3}
    path = f"/{engine.index}/_search?_source_exclude_vectors=false"
    direct = send(engine_port(engine), "POST", path, JSON, json.dumps(body).encode())
    reranked = post(bridge, path, {**body, "ext": RERANK})
    assert reranked.status == direct.status
    if direct.status == 200:
        assert "vector" in reranked.json()["hits"]["hits"][0]["_source"]


# ---- slow and abandoned clients --------------------------------------------------------------


def partial_body(port: int, path: str = "/_search") -> socket.socket:
    """A connection that sent its headers and half of the body it announced."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    connection.sendall(head.encode() + b'{"query": {"match')
    return connection


def answer_on(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def wait_for(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def test_bodies_that_never_arrive_time_out_while_good_requests_are_served(
    engine: Engine, scoring_server: BackgroundServer
) -> None:
    with RunningBridge(config(engine, scoring_server, body_timeout=10.0)) as bridge:
        slow = [partial_body(bridge.port) for _ in range(40)]
        wait_for(lambda: bridge.open_connections >= 40)
        started = time.monotonic()
        good = [
            post(bridge, f"/{engine.index}/_search", {"query": {"match_all": {}}, "size": 1})
            for _ in range(10)
        ]
        assert [answer.status for answer in good] == [200] * 10
        # Served while all forty were still held, not after they timed out.
        assert bridge.open_connections >= 40
        for connection in slow:
            answer = answer_on(connection)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
            assert b'"field": "body"' in answer
            connection.close()
        assert time.monotonic() - started < 60


def test_past_the_connection_limit_new_connections_get_503_until_room_is_made(
    engine: Engine, scoring_server: BackgroundServer
) -> None:
    with RunningBridge(config(engine, scoring_server, max_connections=8, body_timeout=30.0)) as bridge:
        held = [partial_body(bridge.port) for _ in range(8)]
        wait_for(lambda: bridge.open_connections == 8)
        refused = send(bridge.port, "GET", "/")
        assert refused.status == 503 and refused.json()["error"]["type"] == "too_many_connections_exception"
        for connection in held:
            connection.close()
        wait_for(lambda: bridge.open_connections == 0)
        assert send(bridge.port, "GET", f"/{engine.index}/_search").status == 200


def test_an_abandoned_body_is_counted_as_such_not_as_an_error(
    engine: Engine, bridge: RunningBridge, caplog: pytest.LogCaptureFixture
) -> None:
    def abandoned() -> float:
        text = send(bridge.port, "GET", "/metrics").body.decode()
        line = 'rerank_bridge_requests_total{route="search",status="499"}'
        return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(line))

    before = abandoned()
    with caplog.at_level(logging.INFO, logger="rerank_bridge.bridge"):
        for _ in range(3):
            partial_body(bridge.port, f"/{engine.index}/_search").close()
        wait_for(lambda: abandoned() == before + 3)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


# ---- what stands in front of the engine ------------------------------------------------------


def _answering(body: bytes, status: int = 200, content_type: str = "application/json") -> Any:
    """What stands where the engine should: it answers every POST with `body`."""

    class Answering(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Answering


# A load balancer in front of the engine, answering its own HTML error page.
_ERROR_PAGE = _answering(b"<html><body>502 Bad Gateway</body></html>", 502, "text/html")


def test_an_answer_that_is_not_json_on_a_path_the_bridge_reads_is_a_502(
    scoring_server: BackgroundServer,
) -> None:
    balancer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ERROR_PAGE)
    threading.Thread(target=balancer.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{balancer.server_address[1]}"
    try:
        bridge_config = BridgeConfig(
            engine_url=url, engine_kind="elasticsearch", reranker=scoring_server.address
        )
        with RunningBridge(bridge_config) as bridge:
            reranked = post(bridge, "/docs/_search", {"query": {"match": {"text": "x"}}, "ext": RERANK})
            assert reranked.status == 502 and reranked.json()["error"]["type"] == "engine_answer_exception"
            opening = post(bridge, "/docs/_search?scroll=1m", {})
            assert opening.status == 502
            # A search the bridge only relays gets the page as it came.
            relayed = post(bridge, "/docs/_search", {})
            assert relayed.status == 502 and relayed.body.startswith(b"<html>")
    finally:
        balancer.shutdown()


@pytest.mark.parametrize(
    "body", [b'{"hits":"x"}', b'{"hits":{"hits":"x"}}', b'{"hits":{"hits":[1]}}', b"[]", b"{}"]
)
def test_a_search_answer_of_the_wrong_shape_is_a_502_naming_the_engine(
    scoring_server: BackgroundServer, body: bytes
) -> None:
    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _answering(body))
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        bridge_config = BridgeConfig(
            engine_url=f"http://127.0.0.1:{engine.server_address[1]}",
            engine_kind="elasticsearch",
            reranker=scoring_server.address,
        )
        with RunningBridge(bridge_config) as bridge:
            reranked = post(bridge, "/docs/_search", {"query": {"match": {"text": "x"}}, "ext": RERANK})
            assert reranked.status == 502, reranked
            assert reranked.json()["error"]["type"] == "engine_answer_exception"
    finally:
        engine.shutdown()
