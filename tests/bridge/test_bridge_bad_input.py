"""Bad input, case by case, against the bridge in front of a real
Elasticsearch and the scoring server: each case gets its status and an
Elasticsearch-shaped error body naming the field (with the request id and the
product header), and afterwards the bridge and the server still answer a
good search and a good rerank call."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Corpus, Engine
from support.raw_http import RawResponse, send

pytestmark = [pytest.mark.live, pytest.mark.engines("elasticsearch")]
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
MATCH = {"match": {"text": "super bowl"}}
RERANKED = {"query": MATCH, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}}}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    target: str  # "{index}" stands for the test index
    body: Any = None  # bytes as they are; anything else as JSON
    status: int = 400
    field: str = ""  # the field the error names
    headers: dict[str, str] = dataclasses.field(default_factory=lambda: dict(JSON))

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


def search(
    name: str, body: Any, error_field: str, status: int = 400, target: str = "/{index}/_search"
) -> Case:
    return Case(name, "POST", target, body, status, error_field)


def reranked(name: str, section: Any, error_field: str, **body: Any) -> Case:
    """A search whose own ext.rerank_bridge section is bad."""
    return search(name, {"query": MATCH, **body, "ext": {"rerank_bridge": section}}, error_field)


def rerank_field(name: str, key: str, value: Any) -> Case:
    return reranked(name, {"rerank": {"fields": ["text"], key: value}}, f"ext.rerank_bridge.rerank.{key}")


def retriever(name: str, section: Any, error_field: str) -> Case:
    return search(f"retriever: {name}", {"retriever": {"text_similarity_reranker": section}}, error_field)


TSR = {"retriever": {"standard": {"query": MATCH}}, "field": "text", "inference_text": "super bowl"}


def msearch(name: str, lines: list[Any] | bytes, error_field: str, headers: dict[str, str] = NDJSON) -> Case:
    body = (
        lines if isinstance(lines, bytes) else b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    )
    return Case(name, "POST", "/{index}/_msearch", body, 400, error_field, dict(headers))


def rerank_api(name: str, body: Any, error_field: str, status: int = 400, version: str = "v2") -> Case:
    return Case(f"{version}/rerank: {name}", "POST", f"/{version}/rerank", body, status, error_field)


def deep(levels: int) -> bytes:
    return b'{"query":' + b'{"bool":{"must":[' * levels + b"{}" + b"]}}" * levels + b"}"


CASES = [
    # The target: encodings, separators, dot segments, names.
    *(
        Case(f"encoded {code} in the index", "POST", f"/docs{code}_doc{code}2/_search", {}, 400, "path")
        for code in ("%2F", "%2f", "%5C", "%23", "%3F", "%00", "%252F", "%25")
    ),
    Case("overlong UTF-8 slash", "POST", "/docs%C0%AF_doc/_search", {}, 400, "path"),
    Case("malformed escape", "POST", "/docs%zz/_search", {}, 400, "path"),
    Case("truncated escape", "POST", "/docs%4/_search", {}, 400, "path"),
    Case("dot-dot segment", "GET", "/{index}/../_cluster/state", None, 400, "path"),
    Case("encoded dot-dot", "GET", "/_cat/%2e%2e/_security/user", None, 400, "path"),
    Case("mixed dot-dot", "GET", "/_cat/.%2E/_nodes", None, 400, "path"),
    Case("dot segment", "POST", "/./{index}/_search", {}, 400, "path"),
    Case("empty segment", "POST", "/{index}//_search", {}, 400, "path"),
    Case("trailing slash", "POST", "/{index}/_search/", {}, 400, "path"),
    Case("raw backslash", "POST", "/{index}\\_search", {}, 400, "path"),
    Case("absolute-form target", "GET", "http://evil.example/_cluster/state", None, 400, "path"),
    Case("asterisk-form target", "OPTIONS", "*", None, 400, "path"),
    Case("target past 4 KiB", "GET", "/" + "a" * 5000 + "/_search", None, 414, "path"),
    Case("uppercase index", "POST", "/Docs/_search", {}, 400, "index"),
    Case("API name as index", "POST", "/_cluster/_search", {}, 400, "index"),
    Case("non-index characters", "POST", "/docs%3Cx%3E/_search", {}, 400, "index"),
    Case("fullwidth slash in index", "POST", "/docs%EF%BC%8F_doc/_search", {}, 400, "index"),
    Case("empty index item", "POST", "/docs,,x/_search", {}, 400, "index"),
    # Query parameters.
    Case("repeated parameter", "GET", "/{index}/_search?size=1&size=2", None, 400, "size"),
    Case("uppercase parameter name", "GET", "/{index}/_search?Size=1", None, 400, "query"),
    Case("control character in a value", "GET", "/{index}/_search?q=a%01b", None, 400, "q"),
    Case("malformed escape in a value", "GET", "/{index}/_search?q=%G0", None, 400, "q"),
    Case(
        "body in the URL",
        "GET",
        "/{index}/_search?source=%7B%7D&source_content_type=application/json",
        None,
        400,
        "source",
    ),
    Case("scroll past the limit", "GET", "/{index}/_search?scroll=24h", None, 400, "scroll"),
    Case("scroll not a time", "GET", "/{index}/_search?scroll=soon", None, 400, "scroll"),
    Case(
        "scroll with filter_path",
        "GET",
        "/{index}/_search?scroll=1m&filter_path=hits",
        None,
        400,
        "filter_path",
    ),
    search(
        "unknown parameter, reranked",
        {"query": MATCH, "ext": {"rerank_bridge": {}}},
        "foo",
        target="/{index}/_search?foo=1",
    ),
    search(
        "size not a number, reranked",
        {"query": MATCH, "ext": {"rerank_bridge": {}}},
        "size",
        target="/{index}/_search?size=ten",
    ),
    search(
        "negative from, reranked",
        {"query": MATCH, "ext": {"rerank_bridge": {}}},
        "from",
        target="/{index}/_search?from=-1",
    ),
    search(
        "scroll on a reranked search",
        {"query": MATCH, "ext": {"rerank_bridge": {}}},
        "scroll",
        target="/{index}/_search?scroll=1m",
    ),
    search(
        "df without q, reranked",
        {"query": MATCH, "ext": {"rerank_bridge": {}}},
        "df",
        target="/{index}/_search?df=text",
    ),
    search(
        "pretty not a boolean, reranked",
        {"query": MATCH, "ext": {"rerank_bridge": {}}},
        "pretty",
        target="/{index}/_search?pretty=maybe",
    ),
    search(
        "lenient not a boolean, reranked",
        {"ext": {"rerank_bridge": {}}},
        "lenient",
        target="/{index}/_search?q=bowl&lenient=yes",
    ),
    # Methods and routes.
    Case("PUT on _search", "PUT", "/{index}/_search", {}, 405, "method"),
    Case("DELETE on _search", "DELETE", "/_search", None, 405, "method"),
    Case("GET on /v2/rerank", "GET", "/v2/rerank", None, 405, "method"),
    Case("PATCH on /v1/rerank", "PATCH", "/v1/rerank", {}, 405, "method"),
    Case("POST on /metrics", "POST", "/metrics", {}, 405, "method"),
    Case("DELETE on the root", "DELETE", "/", None, 405, "method"),
    Case("PUT on the scroll API", "PUT", "/_search/scroll", {}, 405, "method"),
    Case("index a document", "PUT", "/{index}/_doc/1", {"text": "x"}, 403, "path"),
    Case("delete the index", "DELETE", "/{index}", None, 403, "path"),
    Case("bulk", "POST", "/_bulk", b'{"index":{"_index":"x"}}\n{}\n', 403, "path", dict(NDJSON)),
    Case("cluster state", "GET", "/_cluster/state", None, 403, "path"),
    Case("cluster settings", "PUT", "/_cluster/settings", {"persistent": {}}, 403, "path"),
    Case("search template", "POST", "/{index}/_search/template", {}, 403, "path"),
    Case("scroll id in the path, not opened here", "GET", "/_search/scroll/abc", None, 404, "scroll_id"),
    Case("point in time without keep_alive", "POST", "/{index}/_pit", None, 400, "keep_alive"),
    Case(
        "point in time past the keep-alive limit",
        "POST",
        "/{index}/_pit?keep_alive=2h",
        None,
        400,
        "keep_alive",
    ),
    Case("closing a point in time not opened here", "DELETE", "/_pit", {"id": "abc"}, 404, "id"),
    Case(
        "search on a point in time not opened here", "POST", "/_search", {"pit": {"id": "abc"}}, 404, "pit.id"
    ),
    Case("count on an uppercase index", "POST", "/Docs/_count", {}, 400, "index"),
    Case("count with a body in the URL", "GET", "/{index}/_count?source=%7B%7D", None, 400, "source"),
    Case("the index's mappings", "GET", "/{index}/_mapping", None, 403, "path"),
    Case("delete by query", "POST", "/{index}/_delete_by_query", {"query": {"match_all": {}}}, 403, "path"),
    # Headers.
    Case("a body without Content-Type", "POST", "/{index}/_search", {}, 406, "Content-Type", {}),
    Case("an msearch without Content-Type", "POST", "/_msearch", b"{}\n{}\n", 406, "Content-Type", {}),
    *(
        Case(
            f"Accept {media} on a reranked search",
            "POST",
            "/{index}/_search",
            RERANKED,
            406,
            "Accept",
            {**JSON, "Accept": media},
        )
        for media in ("application/cbor", "application/smile", "text/plain")
    ),
    Case(
        "format=cbor on a search opening a scroll",
        "POST",
        "/{index}/_search?scroll=1m&format=cbor",
        {},
        406,
        "format",
    ),
    Case(
        "Accept smile on a scroll continuation",
        "POST",
        "/_search/scroll",
        {"scroll_id": "x"},
        406,
        "Accept",
        {**JSON, "Accept": "application/smile"},
    ),
    *(
        Case(
            f"Content-Type {media}",
            "POST",
            "/{index}/_search",
            {},
            406,
            "Content-Type",
            {"Content-Type": media},
        )
        for media in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/yaml",
            "application/cbor",
            "application/json; charset=latin-1",
            "application/vnd.elasticsearch+json",
            "application/vnd.elasticsearch+json; compatible-with=x",
            "application/x-ndjson",
        )
    ),
    Case(
        "Content-Encoding compress",
        "POST",
        "/{index}/_search",
        {},
        415,
        "Content-Encoding",
        {**JSON, "Content-Encoding": "compress"},
    ),
    Case(
        "Content-Encoding gzip twice",
        "POST",
        "/{index}/_search",
        {},
        415,
        "Content-Encoding",
        {**JSON, "Content-Encoding": "gzip, gzip"},
    ),
    Case(
        "gzip that is not gzip",
        "POST",
        "/{index}/_search",
        b"not gzip at all",
        400,
        "body",
        {**JSON, "Content-Encoding": "gzip"},
    ),
    Case("Accept with quotes", "POST", "/{index}/_search", {}, 400, "Accept", {**JSON, "Accept": 'text/"x"'}),
    Case("Accept too long", "POST", "/{index}/_search", {}, 400, "Accept", {**JSON, "Accept": "a/b," * 100}),
    Case(
        "X-Opaque-Id not ASCII",
        "POST",
        "/{index}/_search",
        {},
        400,
        "X-Opaque-Id",
        {**JSON, "X-Opaque-Id": "caf\xe9"},
    ),
    Case(
        "malformed traceparent",
        "POST",
        "/{index}/_search",
        {},
        400,
        "traceparent",
        {**JSON, "traceparent": "00-xyz"},
    ),
    # Bodies of a search.
    search("not JSON", b"{", "body"),
    search("invalid UTF-8", b'{"query": {"match": {"text": "\xff"}}}', "body"),
    search("lone surrogate", b'{"query": {"match": {"text": "\\ud800"}}}', "body"),
    search("lone surrogate in a key", b'{"\\udc00": 1}', "body"),
    search("10,000 levels deep", deep(10_000), "body"),
    search("past the depth limit", deep(60), "body"),
    search("duplicate keys", b'{"query": {"match_all": {}}, "query": {"match_all": {}}}', "body"),
    search("NaN", b'{"min_score": NaN}', "body"),
    search("Infinity", b'{"min_score": -Infinity}', "body"),
    search("number out of range", b'{"min_score": 1e400}', "body"),
    search("integer of 5,000 digits", b'{"size": ' + b"9" * 5000 + b"}", "body"),
    search("array body", [], "body"),
    search("string body", "query", "body"),
    search("byte order mark", b'\xef\xbb\xbf{"query": {"match_all": {}}}', "body"),
    search("body past the size limit", b'{"q": "' + b"x" * (11 * 1024 * 1024) + b'"}', "body", 413),
    # The bridge's own rerank section.
    reranked("section not an object", [], "ext.rerank_bridge"),
    reranked("unknown part", {"rerankk": {}}, "ext.rerank_bridge.rerankk"),
    reranked("no fields", {"rerank": {}}, "rerank.fields"),
    reranked("rerank not an object", {"rerank": "text"}, "ext.rerank_bridge.rerank"),
    rerank_field("fields a number", "fields", 5),
    reranked("field name a number", {"rerank": {"fields": [1]}}, "ext.rerank_bridge.rerank.fields[0]"),
    rerank_field("window a string", "rank_window_size", "50"),
    rerank_field("window a fraction", "rank_window_size", 10.5),
    rerank_field("window zero", "rank_window_size", 0),
    rerank_field("window past 10,000", "rank_window_size", 20_000),
    rerank_field("window a boolean", "rank_window_size", True),
    rerank_field("top_n zero", "top_n", 0),
    rerank_field("top_n a string", "top_n", "3"),
    rerank_field("min_score a word", "min_score", "high"),
    rerank_field("fail_open a word", "fail_open", "yes"),
    rerank_field("negative timeout", "timeout", -1),
    rerank_field("zero timeout", "timeout", 0),
    rerank_field("timeout a string", "timeout", "5"),
    rerank_field("timeout past 600 s", "timeout", 1000),
    rerank_field("max_document_tokens zero", "max_document_tokens", 0),
    rerank_field("instruction a number", "instruction", 5),
    rerank_field("rerank query_text a number", "query_text", 5),
    rerank_field("misspelt setting", "windw", 3),
    reranked(
        "no query text to take",
        {"rerank": {"fields": ["text"]}},
        "rerank.query_text",
        query={"match_all": {}},
    ),
    reranked("size past the window", {"rerank": {"fields": ["text"], "rank_window_size": 5}}, "size", size=6),
    reranked("from negative", {"rerank": {"fields": ["text"]}}, "from", **{"from": -1}),
    reranked("size a string", {"rerank": {"fields": ["text"]}}, "size", size="5"),
    reranked(
        "search_after with reranking", {"rerank": {"fields": ["text"]}}, "search_after", search_after=[1]
    ),
    reranked("pit with reranking", {"rerank": {"fields": ["text"]}}, "pit", pit={"id": "x"}),
    reranked(
        "knn vector a number",
        {"rerank": {"fields": ["text"]}, "knn": {"field": "vector", "query_vector": 5}},
        "ext.rerank_bridge.knn.query_vector",
    ),
    reranked(
        "knn vector of words",
        {"rerank": {"fields": ["text"]}, "knn": {"field": "v", "query_vector": ["a"]}},
        "ext.rerank_bridge.knn.query_vector[0]",
    ),
    reranked(
        "knn without a field",
        {"rerank": {"fields": ["text"]}, "knn": {"k": 5}},
        "ext.rerank_bridge.knn.field",
    ),
    reranked(
        "knn k zero",
        {"rerank": {"fields": ["text"]}, "knn": {"field": "vector", "k": 0}},
        "ext.rerank_bridge.knn.k",
    ),
    reranked(
        "knn filter a list",
        {"rerank": {"fields": ["text"]}, "knn": {"field": "vector", "filter": []}},
        "ext.rerank_bridge.knn.filter",
    ),
    reranked(
        "unknown fusion",
        {"rerank": {"fields": ["text"]}, "hybrid": {"method": "mean"}},
        "ext.rerank_bridge.hybrid.method",
    ),
    reranked(
        "weight past 1",
        {"rerank": {"fields": ["text"]}, "hybrid": {"keyword_weight": 2}},
        "ext.rerank_bridge.hybrid.keyword_weight",
    ),
    reranked(
        "rank constant zero",
        {"rerank": {"fields": ["text"]}, "hybrid": {"rank_constant": 0}},
        "ext.rerank_bridge.hybrid.rank_constant",
    ),
    reranked("hybrid without knn", {"rerank": {"fields": ["text"]}, "hybrid": {}}, "hybrid"),
    reranked(
        "window over the reranker's limit",
        {"rerank": {"fields": ["text"], "rank_window_size": 1500, "query_text": "bowl"}},
        "rank_window_size",
        query={"match_all": {}},
        size=10,
    ),
    # Elasticsearch's text_similarity_reranker retriever.
    retriever("no field", {**TSR, "field": None} | {}, "retriever.text_similarity_reranker.field"),
    retriever(
        "field missing",
        {k: v for k, v in TSR.items() if k != "field"},
        "retriever.text_similarity_reranker.field",
    ),
    retriever(
        "inference_text a number",
        {**TSR, "inference_text": 5},
        "retriever.text_similarity_reranker.inference_text",
    ),
    retriever(
        "window a string",
        {**TSR, "rank_window_size": "50"},
        "retriever.text_similarity_reranker.rank_window_size",
    ),
    retriever("min_score a word", {**TSR, "min_score": "x"}, "retriever.text_similarity_reranker.min_score"),
    retriever(
        "no child retriever",
        {k: v for k, v in TSR.items() if k != "retriever"},
        "retriever.text_similarity_reranker.retriever",
    ),
    retriever(
        "empty child retriever", {**TSR, "retriever": {}}, "retriever.text_similarity_reranker.retriever"
    ),
    retriever(
        "two child retrievers",
        {**TSR, "retriever": {"standard": {}, "knn": {"field": "vector"}}},
        "retriever.text_similarity_reranker.retriever",
    ),
    retriever(
        "rrf of strings",
        {**TSR, "retriever": {"rrf": {"retrievers": ["standard"]}}},
        "retriever.text_similarity_reranker.retriever.rrf.retrievers[0]",
    ),
    retriever(
        "rrf of two standards",
        {**TSR, "retriever": {"rrf": {"retrievers": [{"standard": {}}, {"standard": {}}]}}},
        "retriever.text_similarity_reranker.retriever.rrf.retrievers",
    ),
    retriever("unknown key", {**TSR, "chunk_scorer": {}}, "retriever.text_similarity_reranker.chunk_scorer"),
    retriever(
        "knn child without field",
        {**TSR, "retriever": {"knn": {"k": 3}}},
        "retriever.text_similarity_reranker.retriever.knn.field",
    ),
    retriever(
        "standard query a list",
        {**TSR, "retriever": {"standard": {"query": []}}},
        "retriever.text_similarity_reranker.retriever.standard.query",
    ),
    search(
        "reranker retriever not an object",
        {"retriever": {"text_similarity_reranker": 5}},
        "retriever.text_similarity_reranker",
    ),
    # OpenSearch's rerank processor context.
    search("query_context missing", {"query": MATCH, "ext": {"rerank": {}}}, "ext.rerank.query_context"),
    search(
        "query_context empty",
        {"query": MATCH, "ext": {"rerank": {"query_context": {}}}},
        "ext.rerank.query_context",
    ),
    search(
        "query_text a number",
        {"query": MATCH, "ext": {"rerank": {"query_context": {"query_text": 5}}}},
        "ext.rerank.query_context.query_text",
    ),
    search(
        "path leads nowhere",
        {"query": MATCH, "ext": {"rerank": {"query_context": {"query_text_path": "query.x"}}}},
        "ext.rerank.query_context.query_text_path",
    ),
    search(
        "path leads to an object",
        {"query": MATCH, "ext": {"rerank": {"query_context": {"query_text_path": "query"}}}},
        "ext.rerank.query_context.query_text_path",
    ),
    search(
        "both text and path",
        {
            "query": MATCH,
            "ext": {"rerank": {"query_context": {"query_text": "a", "query_text_path": "query"}}},
        },
        "ext.rerank.query_context",
    ),
    search(
        "unknown key in ext.rerank",
        {"query": MATCH, "ext": {"rerank": {"query_context": {"query_text": "a"}, "x": 1}}},
        "ext.rerank.x",
    ),
    # _msearch.
    msearch("odd number of lines", [{}], "body"),
    msearch("no search at all", b"\n", "body"),
    msearch("header an array", [[], {}], "searches[0].header"),
    msearch("unknown header key", [{"indx": "a"}, {}], "searches[0].header.indx"),
    msearch("header index a number", [{"index": 5}, {}], "searches[0].header.index"),
    msearch("header index not a name", [{"index": "Docs"}, {}], "searches[0].header.index"),
    msearch("header index with a slash", [{"index": "docs/_doc/1"}, {}], "searches[0].header.index"),
    msearch("request_cache a word", [{"request_cache": "yes"}, {}], "searches[0].header.request_cache"),
    msearch("body line an array", [{}, []], "searches[0].body"),
    msearch("second search's body", [{}, {}, {}, "x"], "searches[1].body"),
    msearch("line not JSON", b'{}\n{"query":\n', "line 2"),
    msearch("duplicate keys in an msearch line", b'{}\n{"size": 1, "size": 2}\n', "line 2"),
    msearch("past the search limit", [{}, {}] * 101, "body"),
    msearch("JSON content type is fine, bad line", b"{}\n[\n", "line 2", JSON),
    Case(
        "msearch as text/plain",
        "POST",
        "/_msearch",
        b"{}\n{}\n",
        406,
        "Content-Type",
        {"Content-Type": "text/plain"},
    ),
    # The scroll API.
    Case(
        "continue an unknown scroll",
        "POST",
        "/_search/scroll",
        {"scroll_id": "abc", "scroll": "1m"},
        404,
        "scroll_id",
    ),
    Case("continue without an id", "POST", "/_search/scroll", {"scroll": "1m"}, 400, "body.scroll_id"),
    Case("scroll id a number", "POST", "/_search/scroll", {"scroll_id": 5}, 400, "body.scroll_id"),
    Case(
        "unknown key in a continuation", "POST", "/_search/scroll", {"scroll_id": "a", "x": 1}, 400, "body.x"
    ),
    Case("scroll API parameter unknown", "POST", "/_search/scroll?foo=1", {"scroll_id": "a"}, 400, "foo"),
    Case(
        "scroll API with filter_path",
        "POST",
        "/_search/scroll?filter_path=hits",
        {"scroll_id": "a"},
        400,
        "filter_path",
    ),
    Case("clear with ids a number", "DELETE", "/_search/scroll", {"scroll_id": 5}, 400, "body.scroll_id"),
    # /v1/rerank and /v2/rerank.
    rerank_api("no body", None, "query"),
    rerank_api("body an array", [], "body"),
    rerank_api("query missing", {"documents": ["a"]}, "query"),
    rerank_api("query empty", {"query": " ", "documents": ["a"]}, "query"),
    rerank_api("query a number", {"query": 5, "documents": ["a"]}, "query"),
    rerank_api("documents missing", {"query": "q"}, "documents"),
    rerank_api("documents empty", {"query": "q", "documents": []}, "documents"),
    rerank_api("document a number", {"query": "q", "documents": [3]}, "documents[0]"),
    rerank_api(
        "document object without text", {"query": "q", "documents": [{"txt": "a"}]}, "documents[0].text"
    ),
    rerank_api("document text empty", {"query": "q", "documents": ["a", " "]}, "documents[1].text"),
    rerank_api("top_n zero", {"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    rerank_api("top_n a string", {"query": "q", "documents": ["a"], "top_n": "3"}, "top_n"),
    rerank_api("top_n a fraction", {"query": "q", "documents": ["a"], "top_n": 2.5}, "top_n"),
    rerank_api(
        "max_tokens_per_doc zero",
        {"query": "q", "documents": ["a"], "max_tokens_per_doc": 0},
        "max_tokens_per_doc",
    ),
    rerank_api(
        "return_documents a word",
        {"query": "q", "documents": ["a"], "return_documents": "yes"},
        "return_documents",
    ),
    rerank_api("relevant_spans", {"query": "q", "documents": ["a"], "relevant_spans": {}}, "relevant_spans"),
    rerank_api("priority a word", {"query": "q", "documents": ["a"], "priority": "high"}, "priority"),
    rerank_api("unknown model", {"model": "other", "query": "q", "documents": ["a"]}, "model", 404),
    rerank_api("past the document limit", {"query": "q", "documents": ["a"] * 1001}, "documents"),
    rerank_api(
        "past the token cap",
        {"query": "q", "documents": ["a"], "max_tokens_per_doc": 10**6},
        "max_tokens_per_doc",
    ),
    rerank_api("not JSON", b"{", "body"),
    rerank_api("duplicate keys", b'{"query": "a", "query": "b", "documents": ["a"]}', "body"),
    rerank_api("body past the size limit", {"query": "q", "documents": ["x" * (1 << 20)] * 11}, "body", 413),
    rerank_api("documents a string", {"query": "q", "documents": "a"}, "documents", version="v1"),
    rerank_api("unknown key", {"query": "q", "documents": ["a"], "top_k": 2}, "top_k", version="v1"),
    Case("rerank with a parameter", "POST", "/v2/rerank?x=1", {"query": "q", "documents": ["a"]}, 400, "x"),
    Case(
        "rerank as text/plain",
        "POST",
        "/v2/rerank",
        b"{}",
        406,
        "Content-Type",
        {"Content-Type": "text/plain"},
    ),
    # The UI's compare call.
    Case("compare without q", "GET", "/ui/compare?index={index}", None, 400, "q"),
    Case("compare without index", "GET", "/ui/compare?q=x", None, 400, "index"),
    Case("compare on a bad index", "GET", "/ui/compare?index=a%2Fb&q=x", None, 400, "index"),
    Case("compare with an unknown parameter", "GET", "/ui/compare?index={index}&q=x&y=1", None, 400, "y"),
]


@pytest.fixture(scope="module")
def bridge(engine: Engine, scoring_server: BackgroundServer) -> Iterator[RunningBridge]:
    with RunningBridge(BridgeConfig(engine_url=engine.url, reranker=scoring_server.address)) as running:
        yield running


@pytest.fixture(scope="module")
def good(engine: Engine, bridge: RunningBridge, corpus: Corpus) -> Any:
    query = str(corpus.queries[0]["text"])

    def check() -> None:
        """A plain search, a reranked one and a rerank call still answer."""
        body = {"query": {"match": {"text": query}}, "size": 3}
        target = f"/{engine.index}/_search"
        assert send(bridge.port, "POST", target, JSON, json.dumps(body).encode()).status == 200
        reranked = {**body, "ext": {"rerank_bridge": {"rerank": {"fields": ["text"], "rank_window_size": 5}}}}
        answer = send(bridge.port, "POST", target, JSON, json.dumps(reranked).encode())
        assert answer.status == 200 and answer.json()["rerank"]["reranked"] is True
        call = {"query": query, "documents": ["a match", "another"]}
        assert send(bridge.port, "POST", "/v2/rerank", JSON, json.dumps(call).encode()).status == 200

    return check


def test_the_corpus_is_large_and_each_name_is_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) >= 120 and len(set(names)) == len(names)


def assert_shaped(answer: RawResponse, status: int, error_field: str) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.headers["x-elastic-product"] == "Elasticsearch"
    assert answer.headers["x-request-id"]
    body = answer.json()
    error = body["error"]
    # The root cause is the error itself, or what caused it (an unknown context, as the engines say).
    assert (
        body["status"] == status and error["root_cause"][0]["type"] == error.get("caused_by", error)["type"]
    )
    assert error["field"] == error_field, error
    assert error_field in error["reason"] or error_field in ("path", "method", "index", "body"), error
    return dict(body)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_refused_naming_the_field(
    case: Case, engine: Engine, bridge: RunningBridge, good: Any
) -> None:
    target = case.target.replace("{index}", engine.index)
    answer = send(bridge.port, case.method, target, case.headers, case.payload())
    body = assert_shaped(answer, case.status, case.field)
    if case.target.startswith("/v") and case.method == "POST":  # Cohere and Jina clients read `message`
        assert case.field in body["message"]
    good()
