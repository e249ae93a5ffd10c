"""`engine.credentials: caller`, live on OpenSearch with its security plugin: each
caller's own credentials reach the engine, and two users with different index
permissions see through the bridge exactly what they see directly, via
wildcards, aliases, msearch, scroll, points in time and terms lookups. The
bridge's own (administrator) credentials are used for nothing a caller asks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.devtools import local_engines
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.raw_http import RawResponse, send
from support.secured_users import add_reader, secured_node

pytestmark = pytest.mark.live
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
# Passwords the plugin's strength check accepts, not like the user names.
USERS = {
    "alice": ("Quartz-Meadow-7391-Lantern", ["team-a-*"]),
    "bob": ("Violet-Harbor-2846-Compass", ["team-b-*"]),
}
DOCS = {
    "team-a-1": ["alpha river", "alpha stone"],
    "team-a-2": ["alpha cloud"],
    "team-b-1": ["beta river", "beta stone"],
    ".team-a-hidden": ["alpha hidden"],
}


class Node:
    def __init__(self, url: str) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    def call(self, method: str, path: str, body: Any = None, user: str | None = "admin") -> RawResponse:
        headers = dict(JSON) if body is not None else {}
        if user == "admin":
            headers |= local_engines.basic_auth(local_engines.SECURITY_ADMIN)
        elif user is not None:
            headers |= local_engines.basic_auth((user, USERS[user][0]))
        payload = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        if isinstance(body, bytes):
            headers |= NDJSON
        return send(self.port, method, path, headers, payload)


def _must(answer: RawResponse) -> None:
    assert answer.status in (200, 201), answer


@pytest.fixture(scope="module")
def secured() -> Iterator[Node]:
    with secured_node() as url:
        node = Node(url)
        for index, texts in DOCS.items():
            settings = {"settings": {"index": {"hidden": True}}} if index.startswith(".") else {}
            _must(node.call("PUT", f"/{index}", settings))
            for i, text in enumerate(texts):
                _must(node.call("PUT", f"/{index}/_doc/{i}?refresh=true", {"text": text, "n": i}))
        actions = [
            {"add": {"index": "team-a-1", "alias": "a-alias"}},
            {"add": {"index": "team-a-1", "alias": "mixed"}},
            {"add": {"index": "team-b-1", "alias": "mixed"}},
        ]
        _must(node.call("POST", "/_aliases", {"actions": actions}))
        for user, (password, patterns) in USERS.items():
            add_reader(node.call, user, password, [*patterns, f".{patterns[0]}"])
        yield node


@pytest.fixture(scope="module")
def bridge(secured: Node, scoring_server: BackgroundServer) -> Iterator[RunningBridge]:
    admin_user, admin_password = local_engines.SECURITY_ADMIN
    config = BridgeConfig(
        engine_url=secured.url,
        reranker=scoring_server.address,
        engine_credentials="caller",
        # The bridge's own credentials are the administrator's: no caller may get their reach.
        engine_username=admin_user,
        engine_password=admin_password,
    )
    with RunningBridge(config) as running:
        yield running


def through(bridge: RunningBridge, method: str, path: str, body: Any, user: str | None) -> RawResponse:
    return Node(bridge.url).call(method, path, body, user)


def comparable(answer: RawResponse) -> tuple[int, Any]:
    """Status and body without what differs from call to call (took, ids of contexts)."""
    try:
        body = answer.json()
    except ValueError:
        return answer.status, answer.body
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("took", "_scroll_id", "pit_id")}
        if "responses" in body:
            body["responses"] = [{k: v for k, v in r.items() if k != "took"} for r in body["responses"]]
    return answer.status, body


LOOKUP = {"query": {"terms": {"text": {"index": "team-b-1", "id": "0", "path": "text"}}}}
REQUESTS: list[tuple[str, str, str, Any]] = [
    ("own index", "POST", "/team-a-1/_search", {}),
    ("other index", "POST", "/team-b-1/_search", {}),
    ("own wildcard", "POST", "/team-a-*/_search", {}),
    ("every index by *", "POST", "/*/_search", {}),
    ("every index by _all", "POST", "/_all/_search", {}),
    ("no index", "POST", "/_search", {}),
    ("hidden by expand_wildcards", "POST", "/.*/_search?expand_wildcards=all", {}),
    ("own alias", "POST", "/a-alias/_search", {}),
    ("mixed alias", "POST", "/mixed/_search", {}),
    ("terms lookup into the other index", "POST", "/team-a-1/_search", LOOKUP),
    ("count", "POST", "/team-a-*/_count", {}),
    ("count of the other index", "POST", "/team-b-1/_count", {}),
    ("field caps", "GET", "/team-a-1/_field_caps?fields=*", None),
    ("exists", "HEAD", "/team-b-1", None),
    ("explain", "POST", "/team-b-1/_explain/0", {"query": {"match_all": {}}}),
]


@pytest.mark.parametrize("user", ["alice", "bob"])
@pytest.mark.parametrize(("name", "method", "path", "body"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_each_user_sees_through_the_bridge_what_the_engine_shows_them(
    secured: Node, bridge: RunningBridge, user: str, name: str, method: str, path: str, body: Any
) -> None:
    direct = secured.call(method, path, body, user)
    bridged = through(bridge, method, path, body, user)
    assert comparable(bridged) == comparable(direct), name


def test_the_two_users_see_different_things(bridge: RunningBridge) -> None:
    """The comparison above is not trivially equal: the permissions do differ."""
    alice = through(bridge, "POST", "/team-a-*/_search", {}, "alice").json()["hits"]["hits"]
    assert {hit["_index"] for hit in alice} == {"team-a-1", "team-a-2"}
    assert through(bridge, "POST", "/team-b-1/_search", {}, "alice").status == 403
    assert through(bridge, "POST", "/team-b-1/_search", {}, "bob").status == 200
    assert through(bridge, "POST", "/mixed/_search", {}, "bob").status == 403


def test_msearch_items_are_each_the_callers(secured: Node, bridge: RunningBridge) -> None:
    lines = [{"index": "team-a-1"}, {}, {"index": "team-b-1"}, {}, {"index": "mixed"}, {}]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    for user in USERS:
        direct = secured.call("POST", "/_msearch", body, user)
        bridged = through(bridge, "POST", "/_msearch", body, user)
        assert comparable(bridged) == comparable(direct)
        assert [r["status"] for r in bridged.json()["responses"]].count(200) == 1


def test_without_credentials_the_engine_refuses_and_the_bridges_own_are_not_used(
    secured: Node, bridge: RunningBridge
) -> None:
    for path in ("/team-a-1/_search", "/_count", "/"):
        assert secured.call("GET", path, None, user=None).status == 401
        assert through(bridge, "GET", path, None, None).status == 401


def test_a_scroll_pages_as_directly_and_only_for_the_user_who_opened_it(
    secured: Node, bridge: RunningBridge
) -> None:
    pages = {}
    for where, call in (("direct", secured.call), ("bridge", lambda *a: through(bridge, *a))):
        opened = call("POST", "/team-a-*/_search?scroll=1m&size=1&sort=_doc", {}, "alice")
        assert opened.status == 200, opened
        scroll_id, hits = (
            opened.json()["_scroll_id"],
            [h["_id"] + h["_index"] for h in opened.json()["hits"]["hits"]],
        )
        if where == "bridge":
            # Bob cannot continue or clear Alice's scroll.
            assert call("POST", "/_search/scroll", {"scroll_id": scroll_id}, "bob").status == 404
        while True:
            page = call("POST", "/_search/scroll", {"scroll_id": scroll_id, "scroll": "1m"}, "alice")
            assert page.status == 200, page
            scroll_id, batch = page.json()["_scroll_id"], page.json()["hits"]["hits"]
            if not batch:
                break
            hits += [h["_id"] + h["_index"] for h in batch]
        cleared = call("DELETE", "/_search/scroll", {"scroll_id": [scroll_id]}, "alice")
        assert cleared.status == 200
        pages[where] = (hits, cleared.json()["num_freed"])
    # Three documents; one context per shard of the two indices, freed.
    assert pages["bridge"] == pages["direct"] and len(pages["direct"][0]) == 3 and pages["direct"][1] == 2


def test_a_point_in_time_is_the_users_own(secured: Node, bridge: RunningBridge) -> None:
    opened = through(bridge, "POST", "/team-a-*/_search/point_in_time?keep_alive=1m", None, "alice")
    assert opened.status == 200, opened
    pit_id = opened.json()["pit_id"]
    search = {"pit": {"id": pit_id, "keep_alive": "1m"}, "sort": ["_doc"]}
    direct = secured.call("POST", "/_search", search, "alice")
    bridged = through(bridge, "POST", "/_search", search, "alice")
    assert comparable(bridged) == comparable(direct) and bridged.json()["hits"]["total"]["value"] == 3
    # Bob may not search or close it through the bridge; on the engine, his own
    # permissions would decide (he cannot read team-a-*).
    assert through(bridge, "POST", "/_search", search, "bob").status == 404
    assert secured.call("POST", "/_search", search, "bob").status == 403
    assert through(bridge, "DELETE", "/_search/point_in_time", {"pit_id": [pit_id]}, "bob").status == 404
    closed = through(bridge, "DELETE", "/_search/point_in_time/_all", None, "alice")
    assert closed.status == 200, closed
    assert [pit["pit_id"] for pit in closed.json()["pits"]] == [pit_id]
    assert secured.call("GET", "/_search/point_in_time/_all", None).json()["pits"] == []
