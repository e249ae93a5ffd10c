"""A scoped key against the engine's own security, as the oracle.

The same indices, aliases (a filtered one too), data streams and documents
live on OpenSearch with its security plugin, where the user `scoped` may read
`za-*` (index permissions; the plugin narrows wildcards to what a user may
read, `do_not_fail_on_forbidden`), and on the session's plain engine behind
the bridge, where the key `scoped` is scoped to `za-*`. Generated requests (every route the bridge
forwards, every way to name an index, msearch headers of every shape, points in
time, scrolls, reranked or not) go through the bridge, which must never return a
document, id, aggregation bucket, index or field that the secured engine does not
return to its user directly, nor count more documents than the user can count
there (Oracle, below, says why this is held per user rather than per request).

Document ids are unique across indices, and a data stream's backing index
(named differently by each engine) stands for its stream.

$RERANK_SCOPE_EXAMPLES sets the examples per engine (default 150); the long
run before a release: RERANK_SCOPE_EXAMPLES=10000 .venv/bin/pytest -m live -k oracle.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.devtools import local_engines
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Engine
from support.raw_http import Caller, RawResponse
from support.secured_users import add_reader, secured_node

pytestmark = pytest.mark.live
SCOPE = "za-*"
USER, PASSWORD = "scoped", "Quartz-Meadow-7391-Lantern"
EXAMPLES = int(os.environ.get("RERANK_SCOPE_EXAMPLES", "150"))

INDICES: dict[str, list[dict[str, Any]]] = {
    "za-1": [{"text": f"river alpha {i}", "n": i, "secret": "public"} for i in range(4)],
    "za-2": [{"text": f"river alpha two {i}", "n": i, "secret": "public"} for i in range(3)],
    "zb-1": [{"text": f"river beta {i}", "n": i, "secret": "b-secret-value"} for i in range(4)],
    "zsecret-hr": [{"text": f"river salary {i}", "n": i, "salary": 1000 + i} for i in range(2)],
    "za-hidden": [{"text": f"river hidden {i}", "n": i, "secret": "public"} for i in range(2)],
}
STREAMS: dict[str, list[dict[str, Any]]] = {
    "za-logs": [{"text": f"river log {i}", "n": i, "secret": "public"} for i in range(2)],
    "zb-logs": [{"text": f"river log beta {i}", "n": i, "secret": "b-secret-value"} for i in range(2)],
}
ALIASES = [
    {"add": {"index": "za-1", "alias": "za-filtered", "filter": {"term": {"n": 1}}}},
    {"add": {"index": "za-1", "alias": "zmixed"}},
    {"add": {"index": "zb-1", "alias": "zmixed"}},
    {"add": {"index": "za-1", "alias": "zb-in"}},
]
TEMPLATE = {"index_patterns": ["za-logs*", "zb-logs*"], "data_stream": {}, "priority": 500}


def doc_id(index: str, i: int) -> str:
    return f"{index}.{i}"


def _must(answer: RawResponse) -> None:
    assert answer.status in (200, 201), answer


def load(node: Caller) -> None:
    """The indices, aliases, data streams and documents, the same on every node."""
    for index, docs in INDICES.items():
        settings_body = {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
        if index == "za-hidden":
            settings_body["settings"]["index.hidden"] = True
        _must(node.call("PUT", f"/{index}", settings_body))
        for i, doc in enumerate(docs):
            _must(node.call("PUT", f"/{index}/_doc/{doc_id(index, i)}", doc))
    _must(node.call("PUT", "/_index_template/zscope-logs", TEMPLATE))
    for stream, docs in STREAMS.items():
        for i, doc in enumerate(docs):
            timestamped = {**doc, "@timestamp": f"2026-01-0{i + 1}T00:00:00Z"}
            _must(node.call("PUT", f"/{stream}/_create/{doc_id(stream, i)}", timestamped))
    _must(node.call("POST", "/_aliases", {"actions": ALIASES}))
    _must(node.call("POST", "/_refresh?expand_wildcards=all", None))


def unload(node: Caller) -> None:
    for stream in STREAMS:
        node.call("DELETE", f"/_data_stream/{stream}")
    node.call("DELETE", "/_index_template/zscope-logs")
    for index in INDICES:
        node.call("DELETE", f"/{index}?expand_wildcards=all")


@pytest.fixture(scope="module")
def secured() -> Iterator[Caller]:
    with secured_node() as url:
        admin = Caller(url, local_engines.basic_auth(local_engines.SECURITY_ADMIN))
        load(admin)
        narrowing = [{"op": "add", "path": "/config/dynamic/do_not_fail_on_forbidden", "value": True}]
        _must(admin.call("PATCH", "/_plugins/_security/api/securityconfig", narrowing))
        add_reader(admin.call, USER, PASSWORD, [SCOPE])
        yield Caller(url, local_engines.basic_auth((USER, PASSWORD)))


@pytest.fixture(scope="module")
def oracle(secured: Caller) -> Oracle:
    return Oracle(secured)


@pytest.fixture(scope="module")
def bridged(engine: Engine, scoring_server: BackgroundServer) -> Iterator[tuple[Caller, str]]:
    plain = Caller(engine.url, {})
    unload(plain)
    load(plain)
    config = BridgeConfig(
        engine_url=engine.url,
        reranker=scoring_server.address,
        scoped_keys=((USER, (SCOPE,)),),
    )
    try:
        with RunningBridge(config) as bridge:
            yield Caller(bridge.url, {"Authorization": f"ApiKey {USER}"}), engine.kind
    finally:
        unload(plain)


# ---- what an answer shows --------------------------------------------------------------------

_BACKING = re.compile(r"\.ds-(.+?)-(?:\d{4}\.\d{2}\.\d{2}-)?\d{6}")
# The fields of the documents above: each engine adds metadata fields of its own.
FIELDS = {"text", "text.keyword", "n", "secret", "secret.keyword", "salary", "@timestamp"}


def _named(index: str) -> str:
    """An index as both engines name it: a backing index stands for its data stream."""
    backing = _BACKING.fullmatch(index)
    return backing.group(1) if backing else index


@dataclass
class Shown:
    """What one answer (or one search of an msearch) shows a caller."""

    facts: set[tuple[str, str]] = field(default_factory=set)
    counts: list[int] = field(default_factory=list)

    def add(self, other: Shown) -> None:
        self.facts |= other.facts
        self.counts += other.counts


def shown(document: Any) -> Shown:
    """Documents (by index and id), buckets, counts, indices and fields of an answer."""
    seen = Shown()
    if not isinstance(document, dict) or "error" in document:
        return seen
    if "responses" in document:
        for response in document["responses"]:
            seen.add(shown(response))
        return seen
    hits = document.get("hits", {})
    for hit in hits.get("hits", []):
        # Its id too: /ui/compare shows ids alone (unique here, as each names its index).
        seen.facts |= {("doc", f"{_named(hit['_index'])}/{hit['_id']}"), ("id", hit["_id"])}
    total = hits.get("total")
    if total is not None:
        seen.counts.append(total["value"] if isinstance(total, dict) else total)
    if "count" in document:
        seen.counts.append(document["count"])
    for bucket in document.get("aggregations", {}).get("by_index", {}).get("buckets", []):
        seen.facts.add(("bucket", _named(bucket["key"])))
    if "fields" in document and "indices" in document:  # field capabilities
        seen.facts |= {("index", _named(index)) for index in document["indices"]}
        seen.facts |= {("field", name) for name in document["fields"] if name in FIELDS}
    if "_index" in document and "explanation" in document:  # explain, of a document that exists
        seen.facts.add(("doc", f"{_named(document['_index'])}/{document['_id']}"))
    for entry in document.get("reranked", []) + document.get("first_stage", []):  # /ui/compare
        seen.facts.add(("id", entry["id"]))
    return seen


# ---- the requests ----------------------------------------------------------------------------

ITEMS = [
    "za-1",
    "za-2",
    "za-*",
    "z*",
    "*",
    "_all",
    "zb-1",
    "zb-*",
    "zsecret-hr",
    "za-filtered",
    "za-filt*",
    "zmixed",
    "zb-in",
    "za-logs",
    "zb-logs",
    "za-log*",
    ".ds-*",
    "za-hidden",
    "-zb-1",
    "-za-1",
    "-za-*",
    "za-*:x",
    "*:za-1",
    "zremote:za-1",
    "za-missing",
    "zmissing",
]
EXPRESSIONS = st.lists(st.sampled_from(ITEMS), min_size=0, max_size=3).map(",".join)
WILDCARDS = st.sampled_from([None, "all", "open", "open,hidden", "closed", "none"])
BY_INDEX = {"terms": {"field": "_index", "size": 50}}
BODIES = st.sampled_from(
    [
        {"size": 100, "aggs": {"by_index": BY_INDEX}},
        {"size": 100, "query": {"match": {"secret": "b-secret-value"}}, "aggs": {"by_index": BY_INDEX}},
        {"size": 100, "query": {"match": {"text": "river"}}},
        {"size": 100, "query": {"term": {"_index": "zb-1"}}},
        {"size": 0, "aggs": {"by_index": BY_INDEX}},
        {"size": 100, "query": {"terms": {"text": {"index": "zb-1", "id": "zb-1.0", "path": "text"}}}},
    ]
)
ROUTES = st.sampled_from(
    ["search", "get_search", "count", "field_caps", "msearch", "explain", "head", "reranked", "ui"]
)
CONTEXTS = st.sampled_from(["scroll", "pit"])


def _path(expression: str, api: str, wildcards: str | None, extra: str = "") -> str:
    index = f"/{quote(expression, safe=',*:')}" if expression else ""
    params = "&".join(p for p in (f"expand_wildcards={wildcards}" if wildcards else "", extra) if p)
    return f"{index}/{api}" + (f"?{params}" if params else "")


@dataclass(frozen=True)
class Header:
    shape: str  # "empty", "string", "list", "with_wildcards"
    expression: str
    wildcards: str | None

    def line(self) -> dict[str, Any]:
        if self.shape == "empty":
            return {}
        if self.shape == "list":
            return {"index": [item for item in self.expression.split(",") if item]}
        header: dict[str, Any] = {"index": self.expression}
        if self.shape == "with_wildcards" and self.wildcards:
            header["expand_wildcards"] = self.wildcards
        return header


HEADERS = st.builds(
    Header, st.sampled_from(["empty", "string", "list", "with_wildcards"]), EXPRESSIONS, WILDCARDS
)


@dataclass(frozen=True)
class Request:
    route: str
    expression: str
    wildcards: str | None
    body: dict[str, Any]
    headers: tuple[Header, ...] = ()

    def for_bridge(self) -> tuple[str, str, Any]:
        """The call through the bridge (a reranked search asks for it in its body)."""
        if self.route == "reranked":
            rerank = {"rerank": {"fields": ["text"], "rank_window_size": 20, "query_text": "river"}}
            body = {**self.body, "size": 20, "ext": {"rerank_bridge": rerank}}
            return "POST", _path(self.expression, "_search", self.wildcards), body
        if self.route == "ui":
            index = quote(self.expression or "*", safe="")
            return "GET", f"/ui/compare?index={index}&q=river&fields=text", None
        return self.direct()

    def direct(self) -> tuple[str, str, Any]:
        """The same request, straight to the secured engine."""
        route, expression, wildcards = self.route, self.expression, self.wildcards
        if route in ("search", "reranked"):
            body = {**self.body, "size": 20} if route == "reranked" else self.body
            return "POST", _path(expression, "_search", wildcards), body
        if route == "ui":
            body = {"size": 50, "query": {"multi_match": {"query": "river", "fields": ["text"]}}}
            return "POST", _path(expression or "*", "_search", None), body
        if route == "get_search":
            return "GET", _path(expression, "_search", wildcards, "q=river&size=100"), None
        if route == "count":
            query = {k: v for k, v in self.body.items() if k == "query"}
            return "POST", _path(expression, "_count", wildcards), query
        if route == "field_caps":
            return "GET", _path(expression, "_field_caps", wildcards, "fields=*"), None
        if route == "explain":
            return (
                "POST",
                _path(expression or "za-1", "_explain/zb-1.0", wildcards),
                {"query": {"match_all": {}}},
            )
        if route == "head":
            query = f"?expand_wildcards={wildcards}" if wildcards else ""
            return "HEAD", f"/{quote(expression or 'za-1', safe=',*:')}{query}", None
        lines = [line for header in self.headers for line in (header.line(), self.body)]
        ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        return "POST", _path(expression, "_msearch", wildcards), ndjson


REQUESTS = st.builds(
    Request, ROUTES, EXPRESSIONS, WILDCARDS, BODIES, st.lists(HEADERS, min_size=1, max_size=3).map(tuple)
)


class Oracle:
    """What the secured engine shows its user directly, by any request: the documents,
    ids, buckets, indices and fields of every expression the requests use (each name,
    and `*` with every kind of index), and for a query the count over all of them.

    Per request, the plugin answers some expressions with less than it shows the same
    user otherwise (`z*,za-logs` gives the stream's documents only, `-zb-1,z*` a 403),
    so what the bridge shows is held to what the user can read at all."""

    def __init__(self, node: Caller) -> None:
        self.node = node
        self.facts: set[tuple[str, str]] = set()
        body = {"size": 100, "aggs": {"by_index": BY_INDEX}}
        for expression in ["*", *(item for item in ITEMS if not item.startswith("-"))]:
            for method, path, sent in (
                ("POST", _path(expression, "_search", "all"), body),
                ("GET", _path(expression, "_field_caps", "all", "fields=*"), None),
            ):
                answer = node.call(method, path, sent)
                if answer.status == 200:
                    self.facts |= shown(answer.json()).facts
        self._counts: dict[str, int] = {}

    def count(self, query: Any) -> int:
        """How many documents matching `query` the user can count, over every index."""
        key = json.dumps(query, sort_keys=True)
        if key not in self._counts:
            body = {"query": query} if query is not None else {}
            answer = self.node.call("POST", _path("*", "_count", "all"), body)
            assert answer.status == 200, answer
            self._counts[key] = answer.json()["count"]
        return self._counts[key]


def query_of(request: Request) -> Any:
    """The query a request's counts are of."""
    if request.route == "get_search":
        return {"query_string": {"query": "river"}}
    if request.route == "ui":
        return {"multi_match": {"query": "river", "fields": ["text"]}}
    return request.body.get("query")


def assert_within(oracle: Oracle, through_bridge: RawResponse, query: Any, request: Any) -> None:
    """The bridge's answer shows nothing its user cannot read on the secured engine, and
    counts no more than the user can count there."""
    if through_bridge.status >= 500:
        raise AssertionError(
            f"the bridge answered {through_bridge.status} to {request}: {through_bridge.body[:500]!r}"
        )
    document = through_bridge.json()
    leaked = shown(document).facts - oracle.facts
    assert not leaked, (request, leaked, through_bridge.body[:800])
    parts = document.get("responses", [document]) if isinstance(document, dict) else []
    for part in parts:
        for count in shown(part).counts:
            assert count <= oracle.count(query), (request, count, oracle.count(query), part)


# ---- scrolls and points in time: several calls on each side ----------------------------------


def scrolled(node: Caller, expression: str, wildcards: str | None, body: dict[str, Any]) -> RawResponse:
    """Every page of a scroll, as one answer: each page's hits, the first page's count."""
    opened = node.call("POST", _path(expression, "_search", wildcards, "scroll=1m&size=3"), body)
    if opened.status != 200:
        return opened
    document = opened.json()
    scroll_id, hits = document.get("_scroll_id"), list(document["hits"]["hits"])
    for _ in range(20):
        page = node.call("POST", "/_search/scroll", {"scroll_id": scroll_id, "scroll": "1m"})
        if page.status != 200 or not page.json()["hits"]["hits"]:
            break
        scroll_id = page.json()["_scroll_id"]
        hits += page.json()["hits"]["hits"]
    node.call("DELETE", "/_search/scroll", {"scroll_id": [scroll_id]})
    whole = {**document, "hits": {**document["hits"], "hits": hits}}
    return RawResponse(200, {}, json.dumps(whole).encode())


def in_point_in_time(
    node: Caller, kind: str, expression: str, wildcards: str | None, body: dict[str, Any]
) -> RawResponse:
    """A search in a point in time opened on the expression, then closed."""
    opening = "_pit" if kind == "elasticsearch" else "_search/point_in_time"
    opened = node.call("POST", _path(expression, opening, wildcards, "keep_alive=1m"), None)
    if opened.status != 200:
        return opened
    pit_id = opened.json().get("id") or opened.json()["pit_id"]
    searched = node.call("POST", "/_search", {**body, "pit": {"id": pit_id}})
    if kind == "elasticsearch":
        node.call("DELETE", "/_pit", {"id": pit_id})
    else:
        node.call("DELETE", "/_search/point_in_time", {"pit_id": [pit_id]})
    return searched


# ---- the properties ----------------------------------------------------------------------------


def test_the_oracle_shows_the_scope_and_hides_the_rest(secured: Caller, bridged: tuple[Caller, str]) -> None:
    """The comparison below is not vacuous: the secured engine shows the user's indices
    and narrows a wildcard to them; the bridge shows the same through the scope."""
    bridge, _ = bridged
    body = {"size": 100, "aggs": {"by_index": BY_INDEX}}
    for node in (secured, bridge):
        everything = shown(node.call("POST", "/*/_search", body).json())
        assert ("doc", "za-1/za-1.0") in everything.facts and ("bucket", "za-2") in everything.facts
        assert not {fact for fact in everything.facts if "zb-" in fact[1] or "zsecret" in fact[1]}
        assert node.call("POST", "/zb-1/_search", body).status == 403
        filtered = shown(node.call("POST", "/za-filt*/_search", body).json())
        assert filtered.facts == {("doc", "za-1/za-1.1"), ("id", "za-1.1"), ("bucket", "za-1")}
        stream = shown(node.call("POST", "/za-logs/_search", body).json())
        assert ("doc", "za-logs/za-logs.0") in stream.facts


def test_the_oracle_knows_what_the_user_may_read_and_nothing_else(oracle: Oracle) -> None:
    documents = {fact[1].split("/")[0] for fact in oracle.facts if fact[0] == "doc"}
    assert documents == {"za-1", "za-2", "za-hidden", "za-logs"}
    assert ("field", "text") in oracle.facts and ("field", "salary") not in oracle.facts
    assert oracle.count(None) == 11 and oracle.count({"match": {"secret": "b-secret-value"}}) == 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=REQUESTS)
# Leak 1 of issue 30: an msearch header without an index, under an index in the URL.
@example(
    Request(
        "msearch",
        "za-1",
        None,
        {"size": 100, "query": {"match": {"secret": "b-secret-value"}}},
        (Header("empty", "", None),),
    )
)
# Leak 2: a cluster pattern matching no remote cluster, which Elasticsearch reads as every local index.
@example(Request("search", "za-*:x", None, {"size": 100, "aggs": {"by_index": BY_INDEX}}))
@example(Request("count", "za-*:x", None, {}))
@example(Request("field_caps", "za-*:x", None, {}))
def test_the_bridge_never_shows_a_scoped_key_more_than_the_engines_security_shows_its_user(
    secured: Caller, oracle: Oracle, bridged: tuple[Caller, str], request: Request
) -> None:
    bridge, _ = bridged
    through_bridge = bridge.call(*request.for_bridge())
    if request.route == "head":
        # Existence alone: the bridge confirms an index only where the engine does.
        assert through_bridge.status != 200 or secured.call(*request.direct()).status == 200, request
        return
    assert_within(oracle, through_bridge, query_of(request), request)


@settings(
    max_examples=max(EXAMPLES // 5, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(context=CONTEXTS, expression=EXPRESSIONS, wildcards=WILDCARDS, body=BODIES)
def test_scrolls_and_points_in_time_show_no_more_than_the_engines_security(
    oracle: Oracle,
    bridged: tuple[Caller, str],
    context: str,
    expression: str,
    wildcards: str | None,
    body: dict[str, Any],
) -> None:
    bridge, kind = bridged
    if context == "scroll":
        through_bridge = scrolled(bridge, expression, wildcards, body)
    else:
        through_bridge = in_point_in_time(bridge, kind, expression, wildcards, body)
    assert_within(oracle, through_bridge, body.get("query"), (context, expression, wildcards, body))
