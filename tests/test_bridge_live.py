"""The HTTP bridge in front of real Elasticsearch and OpenSearch nodes,
driven by the engines' own official clients, as an application would."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from bridge_runner import RunningBridge
from live_fixtures import Corpus, Engine

from rerank_connectors import HIT_KEY, RerankSettings
from rerank_connectors.bridge.config import BridgeConfig
from rerank_connectors.dialects import engine_client
from rerank_server.app import BackgroundServer

pytestmark = pytest.mark.live
CONFIGURED = "configured-*"


@pytest.fixture
def bridge(engine: Engine, rerank_server: BackgroundServer) -> Iterator[RunningBridge]:
    config = BridgeConfig(
        engine_url=engine.url,
        reranker=rerank_server.address,
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


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null"), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers


def ids(response: Any) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


@pytest.fixture
def query(corpus: Corpus) -> str:
    return str(corpus.queries[3]["text"])


def test_official_client_gets_reranked_results_through_the_bridge(
    engine: Engine, bridge: RunningBridge, query: str
) -> None:
    client = engine_client(engine.kind, bridge.url)
    body = {
        "query": {"match": {"text": query}},
        "size": 10,
        "ext": {"rerank_bridge": {"rerank": {"fields": ["text"], "rank_window_size": 20}}},
    }
    response = dict(getattr(r := client.search(index=engine.index, body=body), "body", r))
    assert response["rerank"]["reranked"] is True
    window = engine.client.search(index=engine.index, body={"query": {"match": {"text": query}}, "size": 20})
    window_ids = {hit["_id"] for hit in dict(getattr(window, "body", window))["hits"]["hits"]}
    assert set(ids(response)) <= window_ids and len(ids(response)) == 10
    assert all(HIT_KEY in hit for hit in response["hits"]["hits"])
    client.close()


def test_configured_index_is_reranked_with_the_query_text_taken_from_the_query(
    engine: Engine, bridge: RunningBridge, configured_alias: str, query: str
) -> None:
    status, response, _ = http(
        "POST", f"{bridge.url}/{configured_alias}/_search", {"query": {"match": {"text": query}}}
    )
    assert status == 200
    assert response["rerank"]["reranked"] is True and response["rerank"]["rank_window_size"] == 20


def test_other_searches_pass_through_untouched(engine: Engine, bridge: RunningBridge, query: str) -> None:
    body = {"query": {"match": {"text": query}}, "size": 5}
    status, response, _ = http("POST", f"{bridge.url}/{engine.index}/_search", body)
    direct = engine.client.search(index=engine.index, body=body)
    assert status == 200 and "rerank" not in response
    assert ids(response) == ids(dict(getattr(direct, "body", direct)))


def test_msearch_answers_each_search_in_order(engine: Engine, bridge: RunningBridge, query: str) -> None:
    lines = [
        {"index": engine.index},
        {
            "query": {"match": {"text": query}},
            "size": 3,
            "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}},
        },
        {"index": f"{engine.index}-missing"},
        {"query": {"match_all": {}}},
        {"index": engine.index},
        {"query": {"match": {"text": query}}, "size": 2},
    ]
    payload = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
    status, response, _ = http(
        "POST", f"{bridge.url}/_msearch", payload, {"Content-Type": "application/x-ndjson"}
    )
    assert status == 200
    first, missing, plain = response["responses"]
    assert first["status"] == 200 and first["rerank"]["reranked"] is True and len(first["hits"]["hits"]) == 3
    assert missing["status"] == 404 and "index_not_found_exception" in json.dumps(missing)
    assert plain["status"] == 200 and "rerank" not in plain and len(plain["hits"]["hits"]) == 2


def test_writes_and_admin_calls_are_refused_unless_allowed(engine: Engine, bridge: RunningBridge) -> None:
    status, body, _ = http("PUT", f"{bridge.url}/{engine.index}/_doc/new", {"text": "x"})
    assert status == 403 and body["error"]["type"] == "security_exception"
    status, _, _ = http("DELETE", f"{bridge.url}/{engine.index}")
    assert status == 403
    assert engine.client.indices.exists(index=engine.index)
    status, health, _ = http("GET", f"{bridge.url}/_cluster/health")
    assert status == 200 and health["status"] in ("green", "yellow")


def test_engine_errors_and_bad_rerank_sections(engine: Engine, bridge: RunningBridge, query: str) -> None:
    rerank = {"ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}
    status, body, _ = http(
        "POST",
        f"{bridge.url}/{engine.index}-missing/_search",
        {"query": {"match": {"text": query}}, **rerank},
    )
    assert status == 404 and body["error"]["type"] == "index_not_found_exception"
    bad = {
        "query": {"match": {"text": query}},
        "ext": {"rerank_bridge": {"rerank": {"fields": ["text"], "top_n": -1}}},
    }
    status, body, _ = http("POST", f"{bridge.url}/{engine.index}/_search", bad)
    assert status == 400 and "ext.rerank_bridge.rerank.top_n" in body["error"]["reason"]


def test_request_id_reaches_the_scoring_server_log(
    engine: Engine, bridge: RunningBridge, query: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"query": {"match": {"text": query}}, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}
    with caplog.at_level(logging.INFO, logger="rerank_server.interceptor"):
        status, _, headers = http(
            "POST", f"{bridge.url}/{engine.index}/_search", body, {"X-Request-Id": "trace-42"}
        )
    assert status == 200 and headers["X-Request-Id"] == "trace-42"
    assert any(
        "request_id=trace-42 method=Rerank code=OK" in record.getMessage() for record in caplog.records
    )


def test_metrics_count_requests_and_stages(engine: Engine, bridge: RunningBridge, query: str) -> None:
    body = {"query": {"match": {"text": query}}, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}
    http("POST", f"{bridge.url}/{engine.index}/_search", body)
    with urllib.request.urlopen(f"{bridge.url}/metrics", timeout=30) as response:
        text = response.read().decode()
    assert 'rerank_bridge_requests_total{route="search",status="200"}' in text
    for stage in ("first_stage", "rerank", "total"):
        assert f'rerank_bridge_stage_seconds_count{{stage="{stage}"}}' in text
