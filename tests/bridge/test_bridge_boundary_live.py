"""The bridge as an attacker meets it, in front of a real Elasticsearch.

Hypothesis builds methods and request targets from API names, index names,
ids, percent-encodings, encoded separators, dot segments and method-override
headers, with bodies that would write if they got through. After every
request two oracles look at the engine, not at the bridge's answer:
- a TCP tap between bridge and engine lists the requests the engine received:
  each must be a search (or the root call, or one the `allow:` rules name);
- an audit of the engine (indices and their state and metadata versions,
  write counters, templates, pipelines, aliases, stored scripts, cluster
  settings, scroll contexts left open) must equal the one taken before.
The audit reads only what a request would have changed for good: a count of open
search contexts would also count a search still running under a loaded machine,
so scrolls are counted by freeing them all (none may be found). Points in time
the bridge opens are its own to close (tests/bridge/test_bridge_clients.py); here no
generated target carries the keep_alive an opening needs.
`--bridge-examples N` (default 2,000) sets how many requests are tried.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.engine_tap import EngineTap
from support.live_fixtures import Engine
from support.raw_http import send

pytestmark = [pytest.mark.live, pytest.mark.engines("elasticsearch")]
ALLOW = ("GET /_cluster/health", "GET /_cat/*")

AUDITED = {
    "indices": "/_cat/indices?format=json&h=index,status,pri,rep,docs.count&expand_wildcards=all&s=index",
    "writes": "/_stats/indexing?expand_wildcards=all&level=indices&filter_path="
    "indices.*.primaries.indexing.index_total,indices.*.primaries.indexing.delete_total,"
    "indices.*.primaries.indexing.noop_update_total",
    "metadata": "/_cluster/state/metadata?filter_path=metadata.indices.*.state,metadata.indices.*.version,"
    "metadata.indices.*.mapping_version,metadata.indices.*.settings_version,"
    "metadata.indices.*.aliases_version,metadata.stored_scripts,metadata.data_stream",
    "templates": "/_template",
    "index_templates": "/_index_template",
    "component_templates": "/_component_template",
    "pipelines": "/_ingest/pipeline",
    "aliases": "/_alias?expand_wildcards=all",
    "cluster_settings": "/_cluster/settings",
}


def scrolls_left_open(url: str) -> int:
    """Frees every scroll context on the engine and says how many there were."""
    clear = urllib.request.Request(
        url + "/_search/scroll",
        data=b'{"scroll_id": "_all"}',
        method="DELETE",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(clear, timeout=30) as response:
            return int(json.load(response)["num_freed"])
    except urllib.error.HTTPError as error:  # 404 where there was none to free
        return int(json.load(error)["num_freed"])


def audit(url: str) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    for name, path in AUDITED.items():
        try:
            with urllib.request.urlopen(url + path, timeout=30) as response:
                snapshot[name] = json.load(response)
        except urllib.error.HTTPError as error:  # e.g. 404 where there is none of a kind
            snapshot[name] = (error.code, json.load(error))
    snapshot["scrolls_left_open"] = scrolls_left_open(url)
    return snapshot


_INDEX = r"[a-z0-9_.*:,-]+"
_PERMITTED = [
    ("GET|HEAD", r"/"),
    ("GET|POST", rf"/(?:{_INDEX}/)?(?:_m?search|_count|_field_caps|_validate/query)"),
    ("GET|POST", rf"/{_INDEX}/_explain/[^/]+"),
    ("HEAD", rf"/{_INDEX}"),
    ("POST", rf"/{_INDEX}/_pit"),
    ("DELETE", r"/_pit"),
    ("GET|POST|DELETE", r"/_search/scroll"),
    ("GET", r"/_cluster/health"),
    ("GET", r"/_cat/[^/]+"),  # any one segment, as `*` allows
]


def permitted(method: str, target: str) -> bool:
    """What the engine may receive from the bridge: the read-only search APIs on index
    expressions, the root call, the allow rules; nothing in a segment that decodes into a
    separator."""
    path = target.split("?", 1)[0]
    return any(re.fullmatch(m, method) and re.fullmatch(p, unquote(path)) for m, p in _PERMITTED)


@pytest.fixture(scope="module")
def tapped_bridge(
    engine: Engine, scoring_server: BackgroundServer
) -> Iterator[tuple[RunningBridge, EngineTap]]:
    with EngineTap(engine.url) as tap:
        config = BridgeConfig(
            engine_url=tap.url, engine_kind=engine.kind, reranker=scoring_server.address, allow=ALLOW
        )
        with RunningBridge(config) as bridge:
            yield bridge, tap


API_NAMES = tuple(
    """
    _doc _create _update _bulk _delete_by_query _update_by_query _close _open _settings _mapping _alias
    _aliases _template _index_template _component_template _ingest pipeline _cluster settings reroute
    state _nodes _cat indices health _search _msearch scroll _security user _snapshot _tasks _forcemerge
    _refresh _flush _reindex _rollover _pit _count _scripts _data_stream _cache clear _shrink _clone
    _split _block write _ilm policy _async_search _sql _query
    """.split()
)
INDEX_NAMES = ("victim", "docs", "*", "_all", "new-index", ".hidden", "-x", "logs-2024", "a,b")
IDS = ("1", "2", "_all", "9")
# Spliced into a name, or between names, to smuggle a separator or a dot segment past a check.
INJECTIONS = (
    "%2F %2f %5C %5c %23 %3F %3f %00 %252F %252f %25 %C0%AF %E2%88%95 %EF%BC%8F ; %3B \\ %09 %20 %2e %2E "
    "%2e%2e %2E%2E .%2e %2e. .. ."
).split()
SEPARATORS = ("/", "/", "/", "//", "/./", "/../", "/%2e%2e/", "/%2E/", "/.%2e/", "\\", "%2F", "/;/")
SUFFIXES = (
    "",
    "",
    "/",
    "?pretty",
    "?q=injected",
    "#frag",
    "?routing=1",
    "?source=%7B%7D",
    "/.",
    "/..",
    "%00",
)
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")
BODIES = (
    b"",
    b'{"text": "injected"}',
    b'{"query": {"match_all": {}}}',
    b'{"index": {"_index": "victim", "_id": "9"}}\n{"text": "injected"}\n',
    b'{"index": "victim"}\n{"query": {"match_all": {}}}\n',
    b'{"persistent": {"cluster.routing.allocation.enable": "none"}}',
    b'{"index_patterns": ["*"], "template": {"settings": {"number_of_replicas": 5}}}',
)


def _percent_encode(text: str, lower: bool) -> str:
    encoded = "".join(f"%{byte:02X}" for byte in text.encode())
    return encoded.lower() if lower else encoded


@st.composite
def pieces(draw: st.DrawFn) -> str:
    piece = draw(st.sampled_from(API_NAMES + INDEX_NAMES + IDS))
    how = draw(st.sampled_from(("plain", "plain", "encoded", "one_encoded", "injected")))
    if how == "encoded":
        return _percent_encode(piece, draw(st.booleans()))
    if how == "one_encoded":
        at = draw(st.integers(0, len(piece) - 1))
        return piece[:at] + _percent_encode(piece[at], draw(st.booleans())) + piece[at + 1 :]
    if how == "injected":
        at = draw(st.integers(0, len(piece)))
        return piece[:at] + draw(st.sampled_from(INJECTIONS)) + piece[at:]
    return piece


# Real calls (searches, the allow rules, writes and admin calls) that free-form paths rarely hit.
TEMPLATES = tuple(
    """
    /{index}/_search /{index}/_msearch /_search /_msearch / /_cluster/health /_cat/{api}
    /{index}/_doc/{id} /{index}/_update/{id} /{index} /_search/scroll /{index}/_settings
    /_cluster/settings /_bulk /{index}/_close /_cat/../_security/user /{index}/_mapping
    /_index_template/{index} /_ingest/pipeline/{id} /{index}/_alias/{id}
    /{index}/_count /_count /{index}/_field_caps /{index}/_validate/query /{index}/_explain/{id}
    /{index}/_pit /_pit /_search/scroll/{id} /{index}/_search/point_in_time
    """.split()
)


@st.composite
def free_paths(draw: st.DrawFn) -> str:
    path = "/"
    for i, name in enumerate(draw(st.lists(pieces(), min_size=0, max_size=5))):
        path += (draw(st.sampled_from(SEPARATORS)) if i else "") + name
    return path


@st.composite
def templated_paths(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(TEMPLATES)).format(
        index=draw(st.sampled_from(INDEX_NAMES)),
        api=draw(st.sampled_from(API_NAMES)),
        id=draw(st.sampled_from(IDS)),
    )
    if draw(st.booleans()):  # one mutation: an injection spliced in, or a "/" swapped for a separator
        at = draw(st.integers(0, len(path)))
        if "/" in path[1:] and draw(st.booleans()):
            at = path.index("/", 1)
            return path[:at] + draw(st.sampled_from(SEPARATORS)) + path[at + 1 :]
        return path[:at] + draw(st.sampled_from(INJECTIONS)) + path[at:]
    return path


Attempt = tuple[str, str, dict[str, str], bytes]


@st.composite
def searches(draw: st.DrawFn) -> Attempt:
    """Searches the bridge must let through, with method-override headers that must not matter."""
    index = draw(st.sampled_from(("victim", "*", "_all", "victim,docs*")))
    target = draw(st.sampled_from(("/{index}/_search", "/_search", "/{index}/_search?size=1"))).format(
        index=index
    )
    headers = {"Content-Type": "application/json"}
    if draw(st.booleans()):
        headers[draw(st.sampled_from(OVERRIDES))] = draw(st.sampled_from(("DELETE", "PUT")))
    return draw(st.sampled_from(("GET", "POST"))), target, headers, b'{"query": {"match_all": {}}}'


@st.composite
def crafted(draw: st.DrawFn) -> Attempt:
    target = draw(st.one_of(templated_paths(), free_paths())) + draw(st.sampled_from(SUFFIXES))
    headers = {}
    body = draw(st.sampled_from(BODIES))
    if body:
        headers["Content-Type"] = draw(st.sampled_from(("application/json", "application/x-ndjson")))
    if draw(st.booleans()):
        headers[draw(st.sampled_from(OVERRIDES))] = draw(st.sampled_from(("DELETE", "PUT", "POST")))
    return draw(st.sampled_from(METHODS)), target, headers, body


def attempts() -> st.SearchStrategy[Attempt]:
    return st.one_of(crafted(), searches())


def test_the_audit_and_the_tap_see_changes(
    engine: Engine, tapped_bridge: tuple[RunningBridge, EngineTap]
) -> None:
    """The oracles can fail: a template written behind the bridge changes the
    audit, and a call through the bridge is seen by the tap."""
    bridge, tap = tapped_bridge
    before = audit(engine.url)
    engine.client.indices.put_index_template(name="audit-probe", index_patterns=["audit-probe-*"], priority=1)
    try:
        assert audit(engine.url) != before
    finally:
        engine.client.indices.delete_index_template(name="audit-probe")
    assert audit(engine.url) == before
    engine.client.search(index=engine.index, scroll="1m", size=1, query={"match_all": {}})
    assert audit(engine.url)["scrolls_left_open"] == 1  # and the audit freed it
    assert audit(engine.url) == before
    tap.taken()
    assert send(bridge.port, "GET", "/_cluster/health").status == 200
    assert tap.taken() == [("GET", "/_cluster/health")]
    assert not permitted("PUT", "/victim/_doc/1") and not permitted("POST", "/docs%2F_doc%2F2/_search")


def test_no_request_through_the_bridge_changes_the_engine(
    engine: Engine, tapped_bridge: tuple[RunningBridge, EngineTap], bridge_examples: int
) -> None:
    bridge, tap = tapped_bridge
    engine.client.indices.create(index="victim")
    engine.client.index(index="victim", id="1", document={"text": "original"}, refresh=True)
    baseline = audit(engine.url)
    tap.taken()
    statuses: dict[int, int] = {}

    @settings(
        max_examples=bridge_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(attempt=attempts())
    def one(attempt: Attempt) -> None:
        method, target, headers, body = attempt
        status = (answer := send(bridge.port, method, target, headers, body)).status
        statuses[status] = statuses.get(status, 0) + 1
        reached = tap.taken()
        assert status < 500, answer
        assert all(permitted(m, t) for m, t in reached), f"{method} {target} reached the engine as {reached}"
        assert audit(engine.url) == baseline, f"{method} {target} {headers} changed the engine"

    try:
        one()
    finally:
        engine.client.indices.delete(index="victim")
    # The generator reaches both sides of the boundary.
    assert statuses.get(403, 0) and statuses.get(400, 0) and statuses.get(200, 0), statuses
