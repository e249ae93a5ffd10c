"""The HTTP bridge in front of real Elasticsearch and OpenSearch nodes: which
searches it reranks and which it passes through untouched, the scroll
lifecycle, what it refuses, request ids in both services' logs, metrics, and
its last-resort answer."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from rerank_bridge.bridge import app as bridge_app
from rerank_bridge.bridge.config import DEFAULT_LIMITS, BridgeConfig
from rerank_bridge.search import RerankSettings
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Corpus, Engine
from support.raw_http import RawResponse, send

pytestmark = pytest.mark.live
CONFIGURED = "configured-*"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def bridge(engine: Engine, scoring_server: BackgroundServer) -> Iterator[RunningBridge]:
    config = BridgeConfig(
        engine_url=engine.url,
        reranker=scoring_server.address,
        indices=((CONFIGURED, RerankSettings(fields=("text",), rank_window_size=20)),),
        allow=("GET /_cluster/health",),
    )
    with RunningBridge(config) as running:
        yield running


@pytest.fixture
def configured_alias(engine: Engine) -> Iterator[str]:
    """An alias that matches the bridge's configured pattern."""
    alias = CONFIGURED.replace("*", engine.index[-8:])
    engine.client.indices.put_alias(index=engine.index, name=alias)
    yield alias
    engine.client.indices.delete_alias(index=engine.index, name=alias)


def post(bridge: RunningBridge, path: str, body: Any, headers: dict[str, str] | None = None) -> RawResponse:
    return send(bridge.port, "POST", path, {**JSON, **(headers or {})}, json.dumps(body).encode())


def direct(engine: Engine, path: str, body: Any) -> RawResponse:
    port = int(engine.url.rsplit(":", 1)[1])
    return send(port, "POST", path, JSON, json.dumps(body).encode())


def without_took(answer: RawResponse) -> dict[str, Any]:
    return {key: value for key, value in answer.json().items() if key != "took"}


def _positionless(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _positionless(v) for k, v in node.items() if k not in ("line", "col")}
    return [_positionless(v) for v in node] if isinstance(node, list) else node


def same_answer(bridged: RawResponse, plain: RawResponse) -> bool:
    """The engine's answer through the bridge and directly. The body the engine
    parses is the one the bridge re-serialised, so a parse error's line and
    column may differ; nothing else does."""
    return bridged.status == plain.status and _positionless(without_took(bridged)) == _positionless(
        without_took(plain)
    )


@pytest.fixture
def query(corpus: Corpus) -> str:
    return str(corpus.queries[3]["text"])


def metrics(bridge: RunningBridge) -> str:
    return send(bridge.port, "GET", "/metrics").body.decode()


def counter(text: str, sample: str) -> float:
    line = next((line for line in text.splitlines() if line.startswith(sample + " ")), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


def test_configured_index_is_reranked_with_the_query_text_taken_from_the_query(
    engine: Engine, bridge: RunningBridge, configured_alias: str, query: str
) -> None:
    answer = post(bridge, f"/{configured_alias}/_search", {"query": {"match": {"text": query}}})
    assert answer.status == 200
    assert answer.json()["rerank"]["reranked"] is True and answer.json()["rerank"]["rank_window_size"] == 20
    by_q = send(bridge.port, "GET", f"/{configured_alias}/_search?q=text:super&size=3")
    assert (
        by_q.status == 200
        and by_q.json()["rerank"]["reranked"] is True
        and len(by_q.json()["hits"]["hits"]) == 3
    )


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"query": {"term": {"lang": "en"}}}, "not_reranked_no_query_text"),
        ({"query": {"match_all": {}}}, "not_reranked_no_query_text"),
        ({}, "not_reranked_no_query_text"),
        (
            {"query": {"match": {"text": "bowl"}}, "size": 0, "aggs": {"l": {"terms": {"field": "lang"}}}},
            "not_reranked_size_0",
        ),
        ({"query": {"match": {"text": "bowl"}}, "sort": [{"article": "asc"}]}, "not_reranked_sorted"),
        (
            {"query": {"match": {"text": "bowl"}}, "search_after": ["a"], "sort": [{"article": "asc"}]},
            "not_reranked_cursor",
        ),
    ],
)
def test_configured_index_passes_through_what_it_cannot_rerank(
    engine: Engine, bridge: RunningBridge, configured_alias: str, body: dict[str, Any], outcome: str
) -> None:
    """Nothing for a reranker to do: the engine's answer as it is, counted by reason."""
    before = counter(metrics(bridge), f'rerank_bridge_searches_total{{outcome="{outcome}"}}')
    bridged, plain = (
        post(bridge, f"/{configured_alias}/_search", body),
        direct(engine, f"/{configured_alias}/_search", body),
    )
    assert bridged.status == plain.status == 200
    assert without_took(bridged) == without_took(plain)
    assert counter(metrics(bridge), f'rerank_bridge_searches_total{{outcome="{outcome}"}}') == before + 1


def test_engine_retrievers_and_plain_searches_pass_through(
    engine: Engine, bridge: RunningBridge, query: str
) -> None:
    """A retriever without a reranker is the engine's to run (OpenSearch refuses it, as it would directly)."""
    for body in (
        {"retriever": {"standard": {"query": {"match": {"text": query}}}}, "size": 3},
        {"query": {"match": {"text": query}}, "size": 3},
    ):
        bridged, plain = (
            post(bridge, f"/{engine.index}/_search", body),
            direct(engine, f"/{engine.index}/_search", body),
        )
        assert same_answer(bridged, plain)


def test_an_msearch_with_nothing_to_rerank_is_the_engines_answer(
    engine: Engine, bridge: RunningBridge, query: str
) -> None:
    lines = [
        {"index": engine.index, "routing": "x"},
        {"query": {"match": {"text": query}}, "size": 2},
        {"index": f"{engine.index}-missing"},
        {"query": {"match_all": {}}},
    ]
    payload = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    ndjson = {"Content-Type": "application/x-ndjson"}
    bridged = send(bridge.port, "POST", "/_msearch", ndjson, payload)
    plain = send(int(engine.url.rsplit(":", 1)[1]), "POST", "/_msearch", ndjson, payload)
    took = re.compile(rb'"took":\d+')
    assert bridged.status == plain.status == 200
    assert took.sub(b"", bridged.body) == took.sub(b"", plain.body)


def test_tracing_headers_reach_the_engine_and_its_echo_comes_back(
    engine: Engine, bridge: RunningBridge, query: str
) -> None:
    """The engines echo X-Opaque-Id: seeing it back, plain and reranked, shows it was forwarded."""
    tracing = {
        "X-Opaque-Id": "app-7",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    body = {"query": {"match": {"text": query}}, "size": 3}
    reranked = {**body, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}
    for search in (body, reranked):
        answer = post(bridge, f"/{engine.index}/_search", search, tracing)
        assert answer.status == 200 and answer.headers["x-opaque-id"] == "app-7"
    assert "x-opaque-id" not in post(bridge, f"/{engine.index}/_search", body).headers


def test_writes_admin_calls_and_method_overrides_do_not_reach_the_engine(
    engine: Engine, bridge: RunningBridge, query: str
) -> None:
    answer = send(bridge.port, "PUT", f"/{engine.index}/_doc/new", JSON, b'{"text": "x"}')
    assert answer.status == 403 and answer.json()["error"]["type"] == "security_exception"
    assert send(bridge.port, "DELETE", f"/{engine.index}").status == 403
    override = {"X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE", "X-Method-Override": "DELETE"}
    searched = post(bridge, f"/{engine.index}/_search", {"query": {"match": {"text": query}}}, override)
    assert searched.status == 200 and searched.json()["hits"]["hits"]
    assert engine.client.indices.exists(index=engine.index)
    assert not engine.client.exists(index=engine.index, id="new")
    health = send(bridge.port, "GET", "/_cluster/health")
    assert health.status == 200 and health.json()["status"] in ("green", "yellow")


def open_scrolls(engine: Engine) -> int:
    stats = dict(getattr(r := engine.client.nodes.stats(metric="indices", index_metric="search"), "body", r))
    return sum(node["indices"]["search"]["scroll_current"] for node in stats["nodes"].values())


def test_only_the_caller_that_opened_a_scroll_can_continue_or_clear_it(
    engine: Engine, scoring_server: BackgroundServer
) -> None:
    config = BridgeConfig(
        engine_url=engine.url, reranker=scoring_server.address, api_keys=frozenset({"k1", "k2"})
    )
    alice, bob = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
    baseline = open_scrolls(engine)
    elsewhere = dict(getattr(r := engine.client.search(index=engine.index, scroll="1m", size=1), "body", r))
    with RunningBridge(config) as bridge:
        opened = post(
            bridge, f"/{engine.index}/_search?scroll=1m&size=2", {"query": {"match_all": {}}}, alice
        )
        scroll_id = opened.json()["_scroll_id"]
        assert open_scrolls(engine) == baseline + 2
        for caller, status in ((bob, 404), (alice, 200)):
            answer = post(bridge, "/_search/scroll", {"scroll_id": scroll_id, "scroll": "1m"}, caller)
            assert answer.status == status
        scroll_id = answer.json()["_scroll_id"]
        # A scroll opened on the engine directly is not the bridge's to clear.
        for caller in (alice, bob):
            refused = send(
                bridge.port,
                "DELETE",
                "/_search/scroll",
                {**JSON, **caller},
                json.dumps({"scroll_id": [elsewhere["_scroll_id"]]}).encode(),
            )
            assert refused.status == 404 and refused.json() == {"succeeded": True, "num_freed": 0}
        assert (
            send(
                bridge.port,
                "DELETE",
                "/_search/scroll",
                {**JSON, **bob},
                json.dumps({"scroll_id": scroll_id}).encode(),
            ).status
            == 404
        )
        cleared = send(
            bridge.port,
            "DELETE",
            "/_search/scroll",
            {**JSON, **alice},
            json.dumps({"scroll_id": scroll_id}).encode(),
        )
        assert cleared.status == 200 and cleared.json()["num_freed"] == 1
        assert open_scrolls(engine) == baseline + 1
    engine.client.clear_scroll(scroll_id=elsewhere["_scroll_id"])
    assert open_scrolls(engine) == baseline


def test_scrolls_are_limited_and_cleared_when_the_bridge_stops(
    engine: Engine, scoring_server: BackgroundServer
) -> None:
    config = BridgeConfig(
        engine_url=engine.url,
        reranker=scoring_server.address,
        limits=DEFAULT_LIMITS.replace(max_open_scrolls=1),
    )
    baseline = open_scrolls(engine)
    with RunningBridge(config) as bridge:
        assert post(bridge, f"/{engine.index}/_search?scroll=1m", {"size": 1}).status == 200
        refused = post(bridge, f"/{engine.index}/_search?scroll=1m", {"size": 1})
        assert refused.status == 429 and refused.json()["error"]["field"] == "scroll"
        assert open_scrolls(engine) == baseline + 1
    assert open_scrolls(engine) == baseline


def test_request_ids_reach_the_scoring_server_log_and_cannot_forge_fields(
    engine: Engine, bridge: RunningBridge, query: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"query": {"match": {"text": query}}, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}
    with caplog.at_level(logging.INFO):
        answer = post(bridge, f"/{engine.index}/_search", body, {"X-Request-Id": "trace-42"})
        forged = post(bridge, f"/{engine.index}/_search", body, {"X-Request-Id": "x code=OK status=200 evil"})
        foreign = post(bridge, f"/{engine.index}/_search", body, {"X-Request-Id": "caf\xe9"})
    assert answer.status == 200 and answer.headers["x-request-id"] == "trace-42"
    messages = [record.getMessage() for record in caplog.records]
    assert any("request_id=trace-42 method=Rerank code=OK" in m for m in messages)  # the server's line
    assert any(
        "request_id=trace-42 method=POST route=search status=200" in m for m in messages
    )  # the bridge's
    for replaced in (forged, foreign):
        fresh = replaced.headers["x-request-id"]
        assert replaced.status == 200 and len(fresh) == 32 and fresh.isalnum()
        assert sum(f"request_id={fresh} " in m for m in messages) == 2  # one line in each service
    # The forged ids themselves (not "caf" alone: a fresh hex id may hold those letters).
    assert not [m for m in messages if "evil" in m or "caf\xe9" in m or "caf\\xe9" in m]


def test_metrics_count_every_answer_and_each_stage(engine: Engine, bridge: RunningBridge, query: str) -> None:
    body = {"query": {"match": {"text": query}}, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}
    samples = {
        ("search", "200"): lambda: post(bridge, f"/{engine.index}/_search", body),
        ("refused", "403"): lambda: send(bridge.port, "PUT", f"/{engine.index}/_doc/1"),
        ("invalid", "400"): lambda: send(bridge.port, "GET", "/docs%2F_doc/_search"),
        ("search", "400"): lambda: send(bridge.port, "POST", f"/{engine.index}/_search", JSON, b"{"),
        ("refused", "405"): lambda: send(bridge.port, "GET", "/v2/rerank"),
    }
    before = metrics(bridge)
    for call in samples.values():
        call()
    after = metrics(bridge)
    for (route, status), _ in samples.items():
        sample = f'rerank_bridge_requests_total{{route="{route}",status="{status}"}}'
        assert counter(after, sample) == counter(before, sample) + 1, sample
    for stage in ("first_stage", "rerank", "total"):
        assert f'rerank_bridge_stage_seconds_count{{stage="{stage}"}}' in after


def test_an_unexpected_error_is_a_shaped_500_with_an_incident_in_the_log(
    engine: Engine, bridge: RunningBridge, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(exchange: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(bridge_app.HANDLERS, "root", broken)
    with caplog.at_level(logging.ERROR, logger="rerank_bridge.bridge"):
        answer = send(bridge.port, "GET", "/")
    assert answer.status == 500 and answer.headers["x-request-id"]
    if engine.kind == "elasticsearch":
        assert answer.headers["x-elastic-product"] == "Elasticsearch"
    error = answer.json()["error"]
    assert error["type"] == "internal_server_error" and "a bug" not in json.dumps(answer.json())
    logged = [r for r in caplog.records if error["incident"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert send(bridge.port, "GET", "/_cluster/health").status == 200


def test_a_chunked_search_through_the_bridge_returns_each_hits_best_passage(
    engine: Engine, bridge: RunningBridge, query: str
) -> None:
    rerank = {
        "fields": ["text"],
        "query_text": query,
        "chunking": {"size": 8, "overlap": 2},
        "best_passage": "text",
    }
    answer = post(
        bridge,
        f"/{engine.index}/_search",
        {"query": {"match": {"text": query}}, "ext": {"rerank_bridge": {"rerank": rerank}}},
    )
    assert answer.status == 200 and answer.json()["rerank"]["reranked"] is True
    for hit in answer.json()["hits"]["hits"]:
        best = hit["_rerank"]["best_passage"]
        assert best["text"] == hit["_source"]["text"][best["start"] : best["end"]] and best["text"]
    bad = post(
        bridge,
        f"/{engine.index}/_search",
        {
            "query": {"match": {"text": query}},
            "ext": {"rerank_bridge": {"rerank": {**rerank, "chunking": {"size": 0}}}},
        },
    )
    assert bad.status == 400 and bad.json()["error"]["field"] == "ext.rerank_bridge.rerank.chunking.size"


def test_a_negative_from_on_a_configured_index_gets_the_engines_own_answer(
    engine: Engine, bridge: RunningBridge, configured_alias: str
) -> None:
    """Elasticsearch's YAML REST test search/30_limits, "negative from", through the bridge."""
    for params in ("from=-2", "size=-1", "from=x"):
        path = f"/{configured_alias}/_search?{params}"
        bridged = send(bridge.port, "GET", path)
        plain = send(int(engine.url.rsplit(":", 1)[1]), "GET", path)
        assert plain.status == 400 and same_answer(bridged, plain), (params, bridged, plain)


def test_a_scroll_id_not_opened_here_is_answered_as_the_engine_answers_an_expired_one(
    engine: Engine, bridge: RunningBridge
) -> None:
    port = int(engine.url.rsplit(":", 1)[1])
    opened = send(port, "POST", f"/{engine.index}/_search?scroll=1m&size=1", JSON, b"{}").json()
    scroll_id = opened["_scroll_id"]
    send(port, "DELETE", "/_search/scroll", JSON, json.dumps({"scroll_id": [scroll_id]}).encode())
    expired = direct(engine, "/_search/scroll", {"scroll_id": scroll_id})
    unknown = post(bridge, "/_search/scroll", {"scroll_id": scroll_id})
    assert expired.status == unknown.status == 404
    engine_error, bridge_error = expired.json()["error"], unknown.json()["error"]
    assert bridge_error["type"] == engine_error["type"]
    assert bridge_error["root_cause"][0]["type"] == engine_error["root_cause"][0]["type"]
