"""The bridge's boundary and request reading, without an engine: target
decoding, routing and allow rules, the URLs built for the engine, strict JSON,
media types, filter_path, URL parameters of reranked searches, and the scroll
registry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from rerank_bridge.bridge.bodies import MediaType, loads, media_type
from rerank_bridge.bridge.boundary import (
    AllowRule,
    Route,
    engine_request_id,
    forwarded_headers,
    index_expression,
    parse_target,
    route_for,
    upstream_url,
)
from rerank_bridge.bridge.config import BridgeConfig, load_config
from rerank_bridge.bridge.contexts import ContextRegistry, duration_seconds
from rerank_bridge.bridge.filter_path import filter_path
from rerank_bridge.bridge.scopes import Scope, refuse_reads_of_other_indices
from rerank_bridge.bridge.search_params import reranked_params
from rerank_bridge.bridge.searches import PassThrough, Reranked, read_search
from rerank_bridge.devtools import checkout
from rerank_bridge.search import RerankSettings
from rerank_bridge.search.errors import (
    RERANKER_REPLIES,
    Refused,
    RequestError,
    RerankRejected,
    RerankUnavailable,
    reranker_error,
)


def refused(raw: str) -> Refused:
    with pytest.raises(Refused) as raised:
        parse_target(raw)
    return raised.value


def test_a_target_is_decoded_once_into_segments_and_parameters() -> None:
    target = parse_target("/logs-2024%2A,docs/_search?q=caf%C3%A9+au+lait&size=3&pretty")
    assert target.segments == ("logs-2024*,docs", "_search")
    assert dict(target.params) == {"q": "café au lait", "size": "3", "pretty": ""}
    assert parse_target("/").segments == ()


@pytest.mark.parametrize(
    "raw",
    [
        "/docs%2F_doc/_search",
        "/docs%2f_doc/_search",
        "/docs%5C_doc/_search",
        "/docs%23/_search",
        "/docs%3F/_search",
        "/docs%00/_search",
        "/docs%252F/_search",
        "/docs%C0%AF/_search",
        "/docs%zz/_search",
        "/_cat/../_nodes",
        "/_cat/%2e%2e/_nodes",
        "/./docs/_search",
        "/docs//_search",
        "/docs/_search/",
        "/docs\\_search",
        "/docs#x/_search",
        "http://host/docs/_search",
        "*",
    ],
)
def test_separators_dot_segments_and_odd_targets_are_refused(raw: str) -> None:
    assert refused(raw).status == 400


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("/docs/_search?size=1&size=2", "size"),
        ("/docs/_search?Size=1", "query"),
        ("/docs/_search?q=%01", "q"),
        ("/docs/_search?q=%G1", "q"),
    ],
)
def test_bad_parameters_are_refused_naming_them(raw: str, field: str) -> None:
    assert refused(raw).field == field


@pytest.mark.parametrize(
    "expression", ["docs", "logs-*", "-old,logs-*", "remote:docs", "_all", ".hidden", "a_b.c"]
)
def test_index_expressions(expression: str) -> None:
    assert index_expression(expression) == expression


@pytest.mark.parametrize(
    "expression",
    # The last three: Latin-1, full-width and Cyrillic letters (ASCII names only, as the grammar says).
    ["Docs", "_cluster", "a b", "docs/x", "a,,b", ".", "..", "--x", "x" * 256, "données", "ｄocs", "dоcs"],
)
def test_what_is_not_an_index_expression(expression: str) -> None:
    with pytest.raises(Refused):
        index_expression(expression)


@pytest.mark.parametrize(
    ("method", "raw", "route"),
    [
        ("GET", "/", Route("root")),
        ("HEAD", "/", Route("root")),
        ("POST", "/docs/_search", Route("search", "docs", ("_search",))),
        ("GET", "/_search", Route("search", "", ("_search",))),
        ("POST", "/a,b/_msearch", Route("msearch", "a,b", ("_msearch",))),
        ("DELETE", "/_search/scroll", Route("scroll")),
        ("GET", "/_search/scroll/abc=", Route("scroll")),
        ("DELETE", "/_search/scroll/_all", Route("scroll")),
        ("GET", "/_count", Route("read", "", ("_count",))),
        ("POST", "/docs/_count", Route("read", "docs", ("_count",))),
        ("GET", "/logs-*/_field_caps", Route("read", "logs-*", ("_field_caps",))),
        ("POST", "/docs/_validate/query", Route("read", "docs", ("_validate", "query"))),
        ("GET", "/docs/_explain/7", Route("read", "docs", ("_explain", "7"))),
        ("HEAD", "/docs", Route("read", "docs")),
        ("POST", "/docs/_pit", Route("pit_open", "docs", ("_pit",))),
        ("DELETE", "/_pit", Route("pit_close")),
        ("POST", "/docs/_search/point_in_time", Route("pit_open", "docs", ("_search", "point_in_time"))),
        ("DELETE", "/_search/point_in_time/_all", Route("pit_close")),
        ("POST", "/v2/rerank", Route("rerank_v2")),
        ("GET", "/_cluster/health", Route("forwarded")),
        ("GET", "/_cat/indices", Route("forwarded")),
    ],
)
def test_routes(method: str, raw: str, route: Route) -> None:
    allow = (AllowRule.parse("GET /_cluster/health"), AllowRule.parse("GET /_cat/*"))
    assert route_for(method, parse_target(raw), allow) == route


@pytest.mark.parametrize(
    ("method", "raw", "status"),
    [
        ("PUT", "/docs/_search", 405),
        ("GET", "/v2/rerank", 405),
        ("PUT", "/docs/_doc/1", 403),
        ("GET", "/_cat/indices/docs", 403),  # `*` stays inside one segment
        ("POST", "/_cat/indices", 403),
        ("GET", "/_cluster/state", 403),
        ("GET", "/docs", 403),  # the index's metadata: not a search API
        ("DELETE", "/docs", 403),
        ("PUT", "/docs/_count", 405),
        ("GET", "/_search/point_in_time/_all", 405),  # listing every caller's points in time
        ("GET", "/docs/_pit", 405),
    ],
)
def test_what_is_not_routed_is_refused(method: str, raw: str, status: int) -> None:
    allow = (AllowRule.parse("GET /_cluster/health"), AllowRule.parse("GET /_cat/*"))
    with pytest.raises(Refused) as raised:
        route_for(method, parse_target(raw), allow)
    assert raised.value.status == status


def test_allow_rules_match_segment_by_segment() -> None:
    deep = AllowRule.parse("GET /_nodes/**")
    assert deep.matches("GET", ("_nodes",)) and deep.matches("GET", ("_nodes", "stats", "jvm"))
    assert not deep.matches("POST", ("_nodes", "stats"))
    assert AllowRule.parse("* /_cluster/health").matches("HEAD", ("_cluster", "health"))
    for bad in ("GET _cat", "get /x", "GET /a//b", "GET /_cat/../x", "GET"):
        with pytest.raises(ValueError):
            AllowRule.parse(bad)


def test_upstream_urls_encode_each_part_on_its_own() -> None:
    url = upstream_url(
        "http://es:9200/prefix", ("données,logs-*", "_search"), {"q": "a&b=c d/e+f", "size": "3"}
    )
    assert url == "http://es:9200/prefix/donn%C3%A9es,logs-*/_search?q=a%26b%3Dc%20d%2Fe%2Bf&size=3"
    assert upstream_url("http://es:9200", (), {}) == "http://es:9200/"


segment_text = st.text(st.characters(codec="utf-8", exclude_characters="/\\#?%"), min_size=1, max_size=12)


@given(
    segments=st.lists(segment_text.filter(lambda s: s not in (".", "..")), max_size=4),
    params=st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=12), max_size=3
    ),
)
def test_what_the_bridge_forwards_decodes_to_what_it_checked(
    segments: list[str], params: dict[str, str]
) -> None:
    """The canonical form is stable: the URL built for the engine, read back the
    way the bridge reads a target, gives exactly the segments and parameters it
    was built from (no part can turn into a separator or a second parameter)."""
    segments = [s for s in segments if not any(ord(c) < 0x20 or c == "\x7f" for c in s)]
    params = {k: v for k, v in params.items() if not any(ord(c) < 0x20 or c == "\x7f" for c in v)}
    url = upstream_url("http://es:9200", tuple(segments), params)
    target = parse_target(url.removeprefix("http://es:9200"))
    assert target.segments == tuple(segments) and dict(target.params) == params


def test_only_checked_headers_pass() -> None:
    headers = {
        "Accept": "application/vnd.elasticsearch+json; compatible-with=8",
        "X-Opaque-Id": "app-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "Authorization": "Bearer caller",
        "X-HTTP-Method-Override": "DELETE",
        "Cookie": "a=b",
    }
    assert forwarded_headers(headers) == {k: headers[k] for k in ("Accept", "X-Opaque-Id", "traceparent")}
    with pytest.raises(Refused) as raised:
        forwarded_headers({"traceparent": "00-nope"})
    assert raised.value.field == "traceparent"


def test_media_types() -> None:
    assert media_type("application/json; charset=UTF-8") == MediaType()
    with pytest.raises(Refused) as missing:  # a body must say what it is, as both engines require
        media_type(None)
    assert missing.value.status == 406 and missing.value.field == "Content-Type"
    vendor = media_type("application/vnd.elasticsearch+x-ndjson; compatible-with=8", ndjson_allowed=True)
    assert vendor == MediaType(ndjson=True, compatible_with="8")
    assert vendor.header(False) == "application/vnd.elasticsearch+json; compatible-with=8"
    for value in (
        "text/plain",
        "application/x-ndjson",
        "application/vnd.elasticsearch+json",
        "application/json; x=1",
    ):
        with pytest.raises(Refused):
            media_type(value)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e999}',
        b'{"a": "\\ud83d"}',
        b'{"\\udfff": 1}',
        b"\xff",
        b"[" * 101 + b"]" * 101,
        b"[" * 5000 + b"]" * 5000,
        b'{"a": ' + b"1" * 5000 + b"}",
    ],
)
def test_strict_json_refuses(raw: bytes) -> None:
    with pytest.raises(RequestError) as raised:
        loads(raw, "body", max_depth=100)
    assert raised.value.field == "body"


def test_strict_json_accepts_what_is_json() -> None:
    assert loads(b'{"a": [1, 2.5, "\\ud83d\\ude00", null, true]}', "body", 100) == {
        "a": [1, 2.5, "😀", None, True]
    }
    assert loads(b"[" * 100 + b"]" * 100, "body", max_depth=100)


RESPONSE: dict[str, Any] = {
    "took": 3,
    "hits": {
        "total": {"value": 2},
        "hits": [{"_id": "a", "_score": 1.0, "_source": {"t": "x"}}, {"_id": "b", "_score": 0.5}],
    },
    "aggregations": {"langs": {"buckets": [{"key": "en", "doc_count": 2}]}},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("hits.hits._id", {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}]}}),
        ("took,hits.total", {"took": 3, "hits": {"total": {"value": 2}}}),
        ("hits.hits._s*", {"hits": {"hits": [{"_score": 1.0, "_source": {"t": "x"}}, {"_score": 0.5}]}}),
        ("**.key", {"aggregations": {"langs": {"buckets": [{"key": "en"}]}}}),
        ("aggregations.**.doc_count", {"aggregations": {"langs": {"buckets": [{"doc_count": 2}]}}}),
        ("-hits,-took", {"aggregations": RESPONSE["aggregations"]}),
        (
            "hits.hits,-hits.hits._source",
            {"hits": {"hits": [{"_id": "a", "_score": 1.0}, {"_id": "b", "_score": 0.5}]}},
        ),
        ("nothing.here", {}),
    ],
)
def test_filter_path_follows_elasticsearch(expression: str, expected: dict[str, Any]) -> None:
    assert filter_path(RESPONSE, expression) == expected


def test_url_parameters_of_a_reranked_search() -> None:
    params = reranked_params(
        {
            "q": "anemia",
            "df": "text",
            "lenient": "true",
            "size": "5",
            "from": "10",
            "routing": "r1",
            "pretty": "",
        },
        "/docs/_search",
    )
    assert params.query == {"query_string": {"query": "anemia", "default_field": "text", "lenient": True}}
    assert (
        params.paging == {"size": 5, "from": 10} and params.first_stage == {"routing": "r1"} and params.pretty
    )
    assert params.apply({"query": {"match_all": {}}, "size": 2, "aggs": {}}) == {
        "query": params.query,
        "size": 5,
        "from": 10,
        "aggs": {},
    }
    for bad, name in (
        ({"scroll": "1m"}, "scroll"),
        ({"foo": "1"}, "foo"),
        ({"size": "-1"}, "size"),
        ({"df": "t"}, "df"),
    ):
        with pytest.raises(RequestError) as raised:
            reranked_params(bad, "/docs/_search")
        assert raised.value.field == name


def test_context_registry_remembers_owners_keep_alives_and_its_limit() -> None:
    now = [0.0]
    registry = ContextRegistry("scroll", "scroll", capacity=2, max_keep_alive=600, clock=lambda: now[0])
    registry.opened("s1", "alice", registry.keep_alive("1m"))
    assert registry.keep_alive_of("s1", "alice") == 60 and registry.keep_alive_of("s1", "bob") is None
    registry.opened("s2", "bob", 30)
    with pytest.raises(Refused) as full, registry.room("carol"):
        pass
    assert full.value.status == 429 and full.value.field == "scroll"
    registry.renewed("s1", "s1b", "alice", 120)
    assert registry.keep_alive_of("s1", "alice") is None and registry.keep_alive_of("s1b", "alice") == 120
    assert registry.owned_by("alice") == ["s1b"] and registry.owned_by("carol") == []
    now[0] = 61.0  # s2 expired
    with registry.room("carol"):
        pass
    assert registry.remaining() == ["s1b"]
    registry.closed("s1b")
    assert registry.remaining() == []
    assert duration_seconds("1500ms", "scroll") == 1.5
    for bad in ("1y", "-1m", "", "11m"):  # 11 minutes is past this registry's 600 s
        with pytest.raises(RequestError):
            registry.keep_alive(bad)


def test_openings_in_flight_count_against_the_limit() -> None:
    """Twenty openings at once against a capacity of three: three get room, as
    concurrent requests on the event loop would (the defect: all twenty did)."""
    registry = ContextRegistry("scroll", "scroll", capacity=3, max_keep_alive=600)

    async def open_one(n: int) -> bool:
        try:
            with registry.room(f"caller-{n % 2}"):
                await asyncio.sleep(0.01)  # the engine call
                registry.opened(f"s{n}", "alice", 60)
        except Refused:
            return False
        return True

    async def all_at_once() -> list[bool]:
        return await asyncio.gather(*(open_one(n) for n in range(20)))

    assert sum(asyncio.run(all_at_once())) == 3
    assert len(registry.remaining()) == 3


def test_one_caller_cannot_take_every_context() -> None:
    registry = ContextRegistry("scroll", "scroll", capacity=10, max_keep_alive=600, per_owner=2)
    for n in range(2):
        with registry.room("alice"):
            registry.opened(f"a{n}", "alice", 60)
    with pytest.raises(Refused) as refused, registry.room("alice"):
        pass
    assert refused.value.status == 429 and "this caller" in str(refused.value)
    with registry.room("bob"):  # the others still have room
        registry.opened("b0", "bob", 60)


def test_one_table_maps_reranker_statuses() -> None:
    rejected = reranker_error(
        "INVALID_ARGUMENT",
        "documents: holds 60 documents; the limit is 50",
        {"documents": "rank_window_size"},
    )
    assert (
        isinstance(rejected, RerankRejected)
        and rejected.status == 400
        and rejected.field == "rank_window_size"
    )
    assert isinstance(reranker_error("NOT_FOUND", "model: unknown"), RerankRejected)
    for code, status in (
        ("UNAVAILABLE", 503),
        ("RESOURCE_EXHAUSTED", 429),
        ("DEADLINE_EXCEEDED", 504),
        ("INTERNAL", 502),
    ):
        outage = reranker_error(code, "x")
        assert isinstance(outage, RerankUnavailable) and outage.status == status
    assert {reply.http_status for reply in RERANKER_REPLIES.values() if not reply.outage} <= {400, 404, 501}


def test_percent_encoding_of_unreserved_characters_reads_the_same() -> None:
    assert parse_target("/" + quote("docs", safe="") + "/%5Fsearch").segments == ("docs", "_search")


ROOT = checkout.root()


def test_the_shipped_configurations_load_strictly(tmp_path: Path) -> None:
    compose = load_config(ROOT / "docker" / "bridge.yaml", {})
    assert compose.engine_kind == "elasticsearch" and compose.allow_rules == (
        AllowRule.parse("GET /_cluster/health"),
    )
    configmap = next(
        doc
        for doc in yaml.safe_load_all((ROOT / "docker" / "k8s" / "rerank-bridge.yaml").read_text())
        if doc["kind"] == "ConfigMap"
    )
    (tmp_path / "k8s.yaml").write_text(configmap["data"]["bridge.yaml"])
    assert load_config(tmp_path / "k8s.yaml", {}).engine_url.startswith("http")
    for text, field in (
        ("engine: {url: 'http://es:9200', timeot: 3}\n", "engine.timeot"),
        ("limits: {max_body_bytes: '10mb'}\n", "limits.max_body_bytes"),
        ("allow: ['GET _cat']\n", "allow rule"),
        ("engine: {url: 'http://user:secret@es:9200'}\n", "credentials"),
        ("indices: {'docs*': {fields: [t], rank_window_size: 0}}\n", "indices.docs*.rank_window_size"),
        ("scoped_keys: {UNSET_KEY: ['docs-*']}\n", "scoped_keys.UNSET_KEY"),
        ("engine: {credentials: user}\n", "engine.credentials"),
        ("engine: {credentials: caller}\napi_keys_env: KEYS\n", "no API keys of its own"),
        ("limits: {body_timeout: 0}\n", "limits.body_timeout"),
    ):
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(RequestError) as raised:
            load_config(tmp_path / "bad.yaml", {"KEYS": "k1"})
        assert field in str(raised.value)


def test_scoped_keys_and_caller_credentials_load_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "scoped.yaml").write_text("scoped_keys: {TEAM_A: ['docs-*', 'shared']}\napi_keys_env: KEYS\n")
    config = load_config(tmp_path / "scoped.yaml", {"TEAM_A": "secret-a", "KEYS": "k1"})
    assert config.scope_of("secret-a") == ("docs-*", "shared") and config.scope_of("k1") is None
    assert config.known_keys == {"secret-a", "k1"} and "secret-a" not in repr(config)
    (tmp_path / "caller.yaml").write_text("engine: {credentials: caller}\n")
    assert load_config(tmp_path / "caller.yaml", {}).engine_credentials == "caller"


def _resolver(answers: dict[str, dict[str, Any]]) -> Any:
    asked: list[tuple[str, str]] = []

    async def resolve(expression: str, expand_wildcards: str) -> dict[str, Any]:
        asked.append((expression, expand_wildcards))
        return answers.get(expression, {})

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def test_a_scope_rebuilds_every_expression_into_in_scope_names() -> None:
    scope = Scope(("docs-*",))
    resolve = _resolver(
        {
            "docs-*": {
                "indices": [{"name": "docs-1"}, {"name": "docs-2"}],
                "aliases": [
                    {"name": "docs-filtered", "indices": ["docs-1"]},
                    {"name": "docs-out", "indices": ["secret"]},
                ],
            },
            "docs-alias": {"aliases": [{"name": "docs-alias", "indices": ["docs-1"]}]},
            "docs-leaky": {"aliases": [{"name": "docs-leaky", "indices": ["docs-1", "secret"]}]},
            "*": {"indices": [{"name": "docs-1"}, {"name": "secret"}]},
            "docs-logs": {"data_streams": [{"name": "docs-logs", "backing_indices": [".ds-docs-logs-1"]}]},
            "docs-2*": {"indices": [{"name": "docs-2"}]},
        }
    )

    def scoped(expression: str, narrow: bool = True) -> str:
        return asyncio.run(scope.targets(expression, "open", resolve, "index", narrow))

    def refusal(expression: str, narrow: bool = True) -> int:
        with pytest.raises(Refused) as refused:
            scoped(expression, narrow)
        return refused.value.status

    # A wildcard becomes the names it reached inside the scope (an alias by its own name,
    # which keeps its filter); a checked name stays as it is; no index is every index.
    assert scoped("docs-*") == "docs-1,docs-2,docs-filtered" and resolve.asked[0] == ("docs-*", "open")
    assert scoped("docs-alias") == "docs-alias" and scoped("docs-logs") == "docs-logs"
    assert scoped("") == scoped("_all") == scoped("*") == "docs-1"
    assert scoped("docs-*,-docs-1") == "docs-2"  # also the alias that reaches docs-1
    assert scoped("docs-new") == "docs-new"  # in scope, not there yet: the engine's 404
    # Out of scope: 403 whether it exists or not; an alias reaching out; a remote index.
    for outside in ("secret", "no-such-index", "docs-leaky", "docs-*:x", "remote:docs-1", "*:docs-1"):
        assert refusal(outside) == 403, outside
    assert refusal("docs-none-*") == 404  # never forwarded as a wildcard the engine could widen
    # An existence check is not narrowed, as engine security does not narrow it.
    assert refusal("*", narrow=False) == 403 and refusal("docs-1,-secret", narrow=False) == 403
    assert refusal("d*", narrow=False) == 403  # judged by its pattern, whatever it reaches now
    assert refusal("-docs-1,docs-2") == 403  # no wildcard before it: a name, not an exclusion
    assert scoped("docs-1,docs-2*", narrow=False) == "docs-1,docs-2"
    with pytest.raises(Refused):
        asyncio.run(scope.targets("docs-*", "none", resolve, "index"))


def test_a_remote_expression_needs_a_pattern_that_names_its_cluster() -> None:
    scope = Scope(("eu-*:docs-*", "docs-*"))
    assert scope.allows_remote("eu-1:docs-1") and scope.allows_remote("eu-*:docs-2*")
    for outside in ("us:docs-1", "eu-1:secret", "*:docs-1", "eu-1:*", "eu-1:d*", "docs-1:x", "docs-*:x"):
        assert not scope.allows_remote(outside), outside
    assert Scope(("docs-*",)).allows("docs-1") and not Scope(("eu:docs-*",)).allows("docs-1")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": {"terms": {"user": {"index": "users", "id": "1", "path": "ids"}}}}, "body.query.terms"),
        ({"query": {"mlt": {"like": {"_index": "x", "_id": "1"}}}}, "body.query.mlt"),
        ({"query": {"percolate": {"field": "q", "index": "x", "id": "1"}}}, "body.query.percolate"),
        ({"runtime_mappings": {"f": {"type": "lookup", "target_index": "x"}}}, "body.runtime_mappings"),
    ],
)
def test_body_features_that_read_other_indices(body: dict[str, Any], field: str) -> None:
    with pytest.raises(Refused) as refused:
        refuse_reads_of_other_indices(body)
    assert refused.value.field == field
    refuse_reads_of_other_indices(
        {"query": {"terms": {"user": ["a", "b"]}}, "runtime_mappings": {"f": {"type": "long"}}}
    )


@pytest.mark.parametrize(
    ("body", "params", "passes"),
    [
        ({"query": {"match": {"t": "x"}}}, {}, ""),
        ({"query": {"match": {"t": "x"}}, "sort": ["_score", {"_score": "desc"}]}, {}, ""),
        ({"query": {"match": {"t": "x"}}, "sort": [{"date": "desc"}]}, {}, "not_reranked_sorted"),
        ({"query": {"match": {"t": "x"}}}, {"sort": "date:desc"}, "not_reranked_sorted"),
        ({"query": {"term": {"t": "x"}}}, {}, "not_reranked_no_query_text"),
        ({}, {"q": "x"}, ""),
        ({"query": {"match": {"t": "x"}}, "size": 0}, {}, "not_reranked_size_0"),
        ({"query": {"match": {"t": "x"}}}, {"scroll": "1m"}, "not_reranked_cursor"),
        ({"query": {"match": {"t": "x"}}, "pit": {"id": "p"}}, {}, "not_reranked_cursor"),
        ({"retriever": {"standard": {}}}, {}, "not_reranked_engine_retriever"),
    ],
)
def test_what_a_configured_index_reranks(body: dict[str, Any], params: dict[str, str], passes: str) -> None:
    config = BridgeConfig("http://es:9200", indices=(("docs*", RerankSettings(fields=("t",))),))
    read = read_search(config, "docs-1", body, params, "/docs-1/_search")
    if passes:
        assert read == PassThrough(passes)
    else:
        assert isinstance(read, Reranked) and read.request.settings.fields == ("t",)
    assert read_search(config, "other", body, params, "/other/_search") == PassThrough("pass_through")
    # A body that asks for reranking is always read as one: reranked, or refused for what it lacks.
    asked = {**body, "ext": {"rerank_bridge": {"fields": ["t"]}}}
    try:
        read = read_search(config, "other", asked, params, "/other/_search")
    except RequestError:
        return
    assert isinstance(read, Reranked)


@given(st.text(alphabet="0123456789abcdefABCDEF-_.xyz", max_size=40))
def test_the_engine_gets_a_request_id_only_in_the_form_opensearch_3_accepts(request_id: str) -> None:
    """OpenSearch 3 answers 400 to an X-Request-Id that is not 32 hex characters."""
    sent = engine_request_id(request_id)
    is_hex = len(request_id) == 32 and all(c in "0123456789abcdefABCDEF" for c in request_id)
    assert sent == ({"X-Request-Id": request_id} if is_hex else {})
