"""Per-key index scopes (`scoped_keys`), for engines without security of their
own, against a real engine: a scoped key never gets a hit, a count or an
aggregation bucket from outside its scope, whatever index expression, wildcard
option or body it sends; a key without a scope still reaches every index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Engine
from support.raw_http import Caller, RawResponse, send

pytestmark = pytest.mark.live
SCOPED, FULL = "key-team-a", "key-everything"
SCOPE = ("scope-a-*", ".scope-a-*")
DOCS = {
    "scope-a-1": 3,
    "scope-a-2": 2,
    "scope-b-1": 4,
    ".scope-a-hidden": 1,
    ".scope-b-hidden": 5,
}
IN_SCOPE = {"scope-a-1", "scope-a-2", ".scope-a-hidden"}


def in_scope(index: str) -> bool:
    return index in IN_SCOPE


@pytest.fixture(scope="module")
def indices(engine: Engine) -> Iterator[None]:
    port = int(engine.url.rsplit(":", 1)[1])
    json_headers = {"Content-Type": "application/json"}
    for index, count in DOCS.items():
        settings_body = {"settings": {"index": {"hidden": True}}} if index.startswith(".") else {}
        send(port, "PUT", f"/{index}", json_headers, json.dumps(settings_body).encode())
        lines = []
        for i in range(count):
            lines += [{"index": {"_index": index, "_id": str(i)}}, {"text": f"river {index} {i}", "n": i}]
        bulk = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        answer = send(port, "POST", "/_bulk?refresh=true", {"Content-Type": "application/x-ndjson"}, bulk)
        assert answer.status == 200 and not answer.json()["errors"]
    actions = [
        {"add": {"index": "scope-a-1", "alias": "scope-a-alias"}},
        {"add": {"index": "scope-a-1", "alias": "scope-mixed"}},
        {"add": {"index": "scope-b-1", "alias": "scope-mixed"}},
    ]
    send(port, "POST", "/_aliases", json_headers, json.dumps({"actions": actions}).encode())
    yield
    for index in DOCS:
        send(port, "DELETE", f"/{index}?expand_wildcards=all")


@pytest.fixture(scope="module")
def bridge(engine: Engine, scoring_server: BackgroundServer, indices: None) -> Iterator[RunningBridge]:
    config = BridgeConfig(
        engine_url=engine.url,
        reranker=scoring_server.address,
        api_keys=frozenset({FULL}),
        scoped_keys=((SCOPED, SCOPE),),
        allow=("GET /_cluster/health",),
    )
    with RunningBridge(config) as running:
        yield running


def call(bridge: RunningBridge, key: str, method: str, path: str, body: Any = None) -> RawResponse:
    return Caller(bridge.url, {"Authorization": f"ApiKey {key}"}).call(method, path, body)


BY_INDEX = {"size": 100, "aggs": {"by_index": {"terms": {"field": "_index", "size": 50}}}}


def indices_seen(document: dict[str, Any]) -> set[str]:
    """Every index a search answer shows: its hits and its per-index buckets."""
    hits = {hit["_index"] for hit in document["hits"]["hits"]}
    buckets = {
        bucket["key"] for bucket in document.get("aggregations", {}).get("by_index", {}).get("buckets", [])
    }
    return hits | buckets


def test_a_scoped_key_reads_its_indices_and_is_refused_the_others(bridge: RunningBridge) -> None:
    own = call(bridge, SCOPED, "POST", "/scope-a-*/_search", BY_INDEX)
    assert own.status == 200 and indices_seen(own.json()) == {"scope-a-1", "scope-a-2"}
    alias = call(bridge, SCOPED, "POST", "/scope-a-alias/_search", BY_INDEX)
    assert alias.status == 200 and indices_seen(alias.json()) == {"scope-a-1"}
    for path in (
        "/scope-b-1/_search",
        "/scope-b-missing/_search",  # refused alike: no name is confirmed to exist
        "/scope-mixed/_search",
        "/scope-b-1/_explain/0",
    ):
        refused = call(bridge, SCOPED, "POST", path, {})
        assert refused.status == 403, (path, refused)
        assert refused.json()["error"]["reason"].startswith("this API key may not read [")
    for path in ("/scope-b-1", "/scope-b-missing"):
        assert call(bridge, SCOPED, "HEAD", path).status == 403
    # No index, or a wildcard reaching further, is narrowed to the scope, as engine security narrows it.
    for path in ("/_search", "/*/_search", "/scope-*,-scope-a-2/_search"):
        narrowed = call(bridge, SCOPED, "POST", path, BY_INDEX)
        assert narrowed.status == 200, (path, narrowed)
        assert indices_seen(narrowed.json()) == (
            {"scope-a-1"} if "-scope-a-2" in path else {"scope-a-1", "scope-a-2"}
        )
    assert call(bridge, SCOPED, "POST", "/*/_count", {}).json()["count"] == 5
    assert call(bridge, SCOPED, "POST", "/scope-b-*/_search", {}).status == 404
    compare = call(bridge, SCOPED, "GET", "/ui/compare?index=scope-b-1&q=river")
    assert compare.status == 403
    assert call(bridge, SCOPED, "GET", "/_cluster/health").status == 403  # an allow: rule
    assert call(bridge, FULL, "GET", "/_cluster/health").status == 200
    # The key without a scope reaches every index, as before.
    everything = call(bridge, FULL, "POST", "/scope-*/_search", BY_INDEX)
    assert indices_seen(everything.json()) == {"scope-a-1", "scope-a-2", "scope-b-1"}


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        (
            "terms lookup",
            {"query": {"terms": {"text": {"index": "scope-b-1", "id": "0", "path": "text"}}}},
            "body.query.terms",
        ),
        (
            "more_like_this of another index's document",
            {
                "query": {
                    "bool": {
                        "should": [
                            {
                                "more_like_this": {
                                    "fields": ["text"],
                                    "like": [{"_index": "scope-b-1", "_id": "0"}],
                                }
                            }
                        ]
                    }
                }
            },
            "body.query.bool.should[0].more_like_this",
        ),
        (
            "indexed shape",
            {
                "query": {
                    "geo_shape": {
                        "where": {"indexed_shape": {"index": "scope-b-1", "id": "0", "path": "shape"}}
                    }
                }
            },
            "body.query.geo_shape.where.indexed_shape",
        ),
        (
            "lookup runtime field",
            {
                "runtime_mappings": {
                    "other": {
                        "type": "lookup",
                        "target_index": "scope-b-1",
                        "input_field": "n",
                        "target_field": "n",
                        "fetch_fields": ["text"],
                    }
                }
            },
            "body.runtime_mappings",
        ),
    ],
)
def test_a_scoped_keys_body_may_not_read_another_index(
    bridge: RunningBridge, name: str, body: dict[str, Any], field: str
) -> None:
    refused = call(bridge, SCOPED, "POST", "/scope-a-1/_search", body)
    assert refused.status == 403 and refused.json()["error"]["field"] == field, name
    lines = b"".join(json.dumps(line).encode() + b"\n" for line in ({"index": "scope-a-1"}, body))
    in_msearch = call(bridge, SCOPED, "POST", "/_msearch", lines)
    assert in_msearch.status == 403 and in_msearch.json()["error"]["field"] == f"searches[0].{field}"


ITEMS = st.sampled_from(
    [
        "scope-a-1",
        "scope-a-*",
        "scope-*",
        "scope-?-1",
        "*",
        "_all",
        "scope-a-alias",
        "scope-mixed",
        "scope-b-1",
        "-scope-b-1",
        ".scope*",
        "*hidden",
        "remote:scope-a-1",
        "scope-missing",
    ]
)
EXPRESSIONS = st.lists(ITEMS, min_size=1, max_size=3).map(",".join)
WILDCARDS = st.sampled_from([None, "all", "open", "hidden,open", "closed"])
BODIES = st.sampled_from(
    [
        BY_INDEX,
        {**BY_INDEX, "query": {"term": {"_index": "scope-b-1"}}},
        {**BY_INDEX, "query": {"match": {"text": "river"}}},
        {**BY_INDEX, "query": {"terms": {"text": {"index": "scope-b-1", "id": "0", "path": "text"}}}},
    ]
)
APIS = st.sampled_from(["search", "msearch", "count", "reranked"])


def test_each_api_of_the_property_test_answers_within_the_scope(bridge: RunningBridge) -> None:
    """The property below is not vacuous: each of its calls can succeed for a scoped key."""
    lines = b"".join(
        json.dumps(line).encode() + b"\n"
        for line in ({"index": "scope-a-1"}, BY_INDEX, {"index": "scope-a-*"}, BY_INDEX)
    )
    msearch = call(bridge, SCOPED, "POST", "/_msearch", lines)
    assert msearch.status == 200, msearch
    first, both = msearch.json()["responses"]
    assert indices_seen(first) == {"scope-a-1"} and indices_seen(both) == {"scope-a-1", "scope-a-2"}
    # A search reaching outside the scope is refused on its own, naming it, as the
    # engines' security answers per search.
    lines = b"".join(
        json.dumps(line).encode() + b"\n"
        for line in ({"index": "scope-a-1"}, BY_INDEX, {"index": "scope-b-1"}, BY_INDEX, {}, BY_INDEX)
    )
    mixed = call(bridge, SCOPED, "POST", "/_msearch", lines)
    assert mixed.status == 200, mixed
    served, refused, narrowed = mixed.json()["responses"]
    assert served["status"] == 200 and indices_seen(served) == {"scope-a-1"}
    assert refused["status"] == 403 and refused["error"]["field"] == "searches[1].header.index"
    assert narrowed["status"] == 200 and indices_seen(narrowed) == {"scope-a-1", "scope-a-2"}
    # A header without an index reads the URL's, and only that.
    under_url = call(
        bridge, SCOPED, "POST", "/scope-a-2/_msearch", b"{}\n" + json.dumps(BY_INDEX).encode() + b"\n"
    )
    assert indices_seen(under_url.json()["responses"][0]) == {"scope-a-2"}
    count = call(bridge, SCOPED, "POST", "/scope-a-*/_count", {})
    assert count.status == 200 and count.json()["count"] == 5
    reranked = {
        **BY_INDEX,
        "size": 20,
        "query": {"match": {"text": "river"}},
        "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}},
    }
    answer = call(bridge, SCOPED, "POST", "/.scope-a-*,scope-a-*/_search?expand_wildcards=all", reranked)
    assert answer.status == 200 and answer.json()["rerank"]["reranked"] is True
    assert indices_seen(answer.json()) == IN_SCOPE


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expression=EXPRESSIONS, wildcards=WILDCARDS, body=BODIES, api=APIS)
def test_a_scoped_key_never_gets_anything_from_outside_its_scope(
    bridge: RunningBridge, expression: str, wildcards: str | None, body: dict[str, Any], api: str
) -> None:
    query = f"?expand_wildcards={wildcards}" if wildcards else ""
    if api == "msearch":
        header: dict[str, Any] = {
            "index": expression,
            **({"expand_wildcards": wildcards} if wildcards else {}),
        }
        lines = b"".join(json.dumps(line).encode() + b"\n" for line in (header, body))
        answer = call(bridge, SCOPED, "POST", "/_msearch", lines)
        documents = answer.json().get("responses", []) if answer.status == 200 else []
    elif api == "count":
        counted = {key: value for key, value in body.items() if key == "query"}
        answer = call(bridge, SCOPED, "POST", f"/{expression}/_count{query}", counted)
        full = call(
            bridge, FULL, "POST", f"/{','.join(sorted(IN_SCOPE))}/_count?expand_wildcards=all", counted
        )
        if answer.status == 200:
            assert answer.json()["count"] <= full.json()["count"]
        documents = []
    else:
        sent = (
            {**body, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}
            if api == "reranked"
            else body
        )
        if api == "reranked":
            sent = {**sent, "query": sent.get("query", {"match": {"text": "river"}})}
        answer = call(bridge, SCOPED, "POST", f"/{expression}/_search{query}", sent)
        documents = [answer.json()] if answer.status == 200 else []
    assert answer.status in (200, 400, 403, 404), answer
    for document in documents:
        if "hits" in document:
            assert all(in_scope(index) for index in indices_seen(document)), (expression, document)


def test_a_scoped_key_searches_in_its_own_point_in_time(engine: Engine, bridge: RunningBridge) -> None:
    """A point in time is opened on checked indices; a search in it names none, and is the key's own."""
    opening = "_pit" if engine.kind == "elasticsearch" else "_search/point_in_time"
    opened = call(bridge, SCOPED, "POST", f"/scope-*/{opening}?keep_alive=1m")
    assert opened.status == 200, opened
    pit_id = opened.json().get("id") or opened.json()["pit_id"]
    search = {**BY_INDEX, "pit": {"id": pit_id}}
    searched = call(bridge, SCOPED, "POST", "/_search", search)
    assert searched.status == 200 and indices_seen(searched.json()) == {"scope-a-1", "scope-a-2"}
    lines = b"".join(json.dumps(line).encode() + b"\n" for line in ({}, search))
    in_msearch = call(bridge, SCOPED, "POST", "/_msearch", lines)
    assert indices_seen(in_msearch.json()["responses"][0]) == {"scope-a-1", "scope-a-2"}
    # Not another key's: the other key never opened it here.
    assert call(bridge, FULL, "POST", "/_search", search).status == 404
