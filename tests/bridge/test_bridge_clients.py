"""The official clients through the bridge, as applications use them:
elasticsearch-py (and elasticsearch.dsl) on Elasticsearch, opensearch-py (and
its helpers.search) on OpenSearch. Plain searches must be the engine's own
answer, byte for byte; a reranked window must hold exactly the hits the
engine returns for it, each once."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.live_fixtures import Corpus, Engine

pytestmark = pytest.mark.live
WINDOW = 20
RERANK = {"rerank_bridge": {"rerank": {"fields": ["text"], "rank_window_size": WINDOW}}}


@pytest.fixture(scope="module")
def bridge(engine: Engine, scoring_server: BackgroundServer) -> Iterator[RunningBridge]:
    with RunningBridge(BridgeConfig(engine_url=engine.url, reranker=scoring_server.address)) as running:
        yield running


@pytest.fixture
def through(engine: Engine, bridge: RunningBridge) -> Iterator[Any]:
    """The engine's official client, pointed at the bridge."""
    client = DIALECTS[engine.kind].client(bridge.url)
    yield client
    client.close()


@pytest.fixture
def query(corpus: Corpus) -> str:
    return str(corpus.queries[7]["text"])


def plain(response: Any) -> dict[str, Any]:
    return dict(getattr(response, "body", response))


def search(client: Any, index: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    """One search, the way each client is usually called."""
    if type(client).__module__.startswith("elasticsearch"):
        return plain(client.search(index=index, **body, **params))
    return plain(client.search(index=index, body=body, **params))


def ids(response: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


def without_took(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "took"}


def failure(error: Exception) -> tuple[int, Any]:
    """Status and body of either client's API error."""
    meta = getattr(error, "meta", None)
    status = meta.status if meta is not None else error.status_code  # type: ignore[attr-defined]
    return status, getattr(error, "body", None) or getattr(error, "info", None)


def raw_post(url: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def test_plain_search_is_the_engines_answer_byte_for_byte(
    engine: Engine, bridge: RunningBridge, through: Any, query: str
) -> None:
    body = {"query": {"match": {"text": query}}, "size": 5, "aggs": {"langs": {"terms": {"field": "lang"}}}}
    media = (
        "application/vnd.elasticsearch+json; compatible-with=8"
        if engine.kind == "elasticsearch"
        else "application/json"
    )
    headers = {"Content-Type": media, "Accept": media}
    path = f"/{engine.index}/_search"
    took = re.compile(rb'"took":\d+')
    bridged, direct = raw_post(bridge.url + path, body, headers), raw_post(engine.url + path, body, headers)
    assert took.sub(b"", bridged) == took.sub(b"", direct)
    filtered = f"{path}?filter_path=hits.hits._id,hits.hits._score,aggregations"
    assert raw_post(bridge.url + filtered, body, headers) == raw_post(engine.url + filtered, body, headers)
    assert without_took(search(through, engine.index, body)) == without_took(
        search(engine.client, engine.index, body)
    )


def test_reranked_search_keeps_the_engines_window(engine: Engine, through: Any, query: str) -> None:
    match = {"query": {"match": {"text": query}}}
    response = search(through, engine.index, {**match, "size": WINDOW, "ext": RERANK})
    window = search(engine.client, engine.index, {**match, "size": WINDOW})
    assert response["rerank"]["reranked"] is True
    assert sorted(ids(response)) == sorted(ids(window)) and len(set(ids(response))) == WINDOW
    scores = [hit["_score"] for hit in response["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)
    first_page = search(through, engine.index, {**match, "size": 5, "ext": RERANK})
    assert ids(first_page) == ids(response)[:5]


def test_url_parameters_of_a_reranked_search_are_honoured(engine: Engine, through: Any, query: str) -> None:
    match = {"query": {"match": {"text": query}}, "ext": RERANK}
    whole = search(through, engine.index, {**match, "size": WINDOW})
    if engine.kind == "elasticsearch":
        page = plain(through.search(index=engine.index, **match, from_=5, size=5))
    else:
        page = plain(through.search(index=engine.index, body=match, from_=5, size=5))
    assert ids(page) == ids(whole)[5:10]
    filtered = search(
        through, engine.index, {**match, "size": 3}, filter_path="hits.hits._id,rerank.reranked"
    )
    assert filtered == {"hits": {"hits": [{"_id": i} for i in ids(whole)[:3]]}, "rerank": {"reranked": True}}
    counted = search(through, engine.index, {**match, "size": 3}, track_total_hits=False)
    assert "total" not in counted["hits"]
    with pytest.raises(Exception) as raised:
        search(through, engine.index, {**match, "size": 3}, scroll="1m")
    status, body = failure(raised.value)
    assert status == 400 and "scroll" in json.dumps(body)


def test_search_after_pages_like_the_engine_and_is_refused_with_reranking(
    engine: Engine, through: Any, query: str
) -> None:
    body: dict[str, Any] = {
        "query": {"term": {"lang": "en"}},
        "size": 10,
        "sort": [{"article": "asc"}, "_doc"],
    }
    seen = []
    for _ in range(3):
        bridged, direct = search(through, engine.index, body), search(engine.client, engine.index, body)
        assert ids(bridged) == ids(direct)
        seen += ids(bridged)
        body["search_after"] = bridged["hits"]["hits"][-1]["sort"]
    assert len(seen) == len(set(seen)) == 30
    with pytest.raises(Exception) as raised:
        search(
            through, engine.index, {"query": {"match": {"text": query}}, "search_after": [1], "ext": RERANK}
        )
    status, answer = failure(raised.value)
    assert status == 400 and answer["error"]["field"] == "search_after"


def open_scrolls(engine: Engine) -> int:
    stats = plain(engine.client.nodes.stats(metric="indices", index_metric="search"))
    return sum(node["indices"]["search"]["scroll_current"] for node in stats["nodes"].values())


def test_scan_helpers_read_every_document_and_clear_their_scrolls(
    engine: Engine, through: Any, corpus: Corpus
) -> None:
    if engine.kind == "elasticsearch":
        from elasticsearch import helpers
        from elasticsearch.dsl import Search
    else:
        from opensearchpy import Search, helpers  # type: ignore[assignment]
    english = sum(doc["metadata"]["lang"] == "en" for doc in corpus.docs)
    german = len(corpus.docs) - english
    before = open_scrolls(engine)
    scanned = [
        hit["_id"]
        for hit in helpers.scan(
            through, index=engine.index, query={"query": {"term": {"lang": "en"}}}, size=300, scroll="1m"
        )
    ]
    assert len(scanned) == len(set(scanned)) == english
    dsl = [
        hit.meta.id
        for hit in Search(using=through, index=engine.index).query("term", lang="de").params(size=400).scan()
    ]
    assert len(dsl) == len(set(dsl)) == german
    assert open_scrolls(engine) == before


def test_msearch_honours_each_header(engine: Engine, through: Any, query: str) -> None:
    match = {"query": {"match": {"text": query}}}
    searches: list[dict[str, Any]] = [
        {"index": engine.index},
        {**match, "size": WINDOW, "ext": RERANK},
        {"index": engine.index},
        {**match, "size": 3},
        {"index": f"{engine.index}-missing"},
        match,
        {"index": f"{engine.index}-missing", "ignore_unavailable": True},
        {**match, "ext": RERANK},
    ]
    if engine.kind == "elasticsearch":
        responses = plain(through.msearch(searches=searches))["responses"]
    else:
        responses = plain(through.msearch(body=searches))["responses"]
    reranked, plain_item, missing, ignored = responses
    window = search(engine.client, engine.index, {**match, "size": WINDOW})
    assert reranked["status"] == 200 and reranked["rerank"]["reranked"] is True
    assert sorted(ids(reranked)) == sorted(ids(window))
    assert without_took(plain_item) == {
        **without_took(search(engine.client, engine.index, {**match, "size": 3})),
        "status": 200,
    }
    assert missing["status"] == 404 and missing["error"]["type"] == "index_not_found_exception"
    assert ignored["status"] == 200 and ignored["hits"]["hits"] == []


def test_aggregations_and_engine_parts_survive_reranking(engine: Engine, through: Any, query: str) -> None:
    body = {
        "query": {"match": {"text": query}},
        "size": WINDOW,
        "aggs": {"langs": {"terms": {"field": "lang"}}},
        "highlight": {"fields": {"text": {}}},
    }
    reranked = search(through, engine.index, {**body, "ext": RERANK})
    direct = search(engine.client, engine.index, body)
    assert reranked["aggregations"] == direct["aggregations"]
    assert reranked["hits"]["total"] == direct["hits"]["total"]
    highlights = {hit["_id"]: hit.get("highlight") for hit in direct["hits"]["hits"]}
    assert all(hit.get("highlight") == highlights[hit["_id"]] for hit in reranked["hits"]["hits"])


def test_dsl_search_objects(engine: Engine, through: Any, query: str) -> None:
    if engine.kind == "elasticsearch":
        from elasticsearch.dsl import Search
    else:
        from opensearchpy import Search  # type: ignore[assignment]
    s = Search(using=through, index=engine.index).query("match", text=query).extra(size=WINDOW)
    direct = Search(using=engine.client, index=engine.index).query("match", text=query).extra(size=WINDOW)
    assert [hit.meta.id for hit in s.execute()] == [hit.meta.id for hit in direct.execute()]
    reranked = s.extra(ext=RERANK).execute()
    assert reranked.to_dict()["rerank"]["reranked"] is True
    assert sorted(hit.meta.id for hit in reranked) == sorted(hit.meta.id for hit in direct.execute())
    assert all(hit.meta.score == hit.to_dict().get("_score", hit.meta.score) for hit in reranked)


def test_compressed_bodies_engine_errors_and_refused_writes(
    engine: Engine, bridge: RunningBridge, query: str
) -> None:
    """gzip request bodies (http_compress) are read; an engine error keeps its
    status and type (the Elasticsearch client would report a missing product
    header instead); a write is refused and never reaches the engine."""
    client: Any
    if engine.kind == "elasticsearch":
        from elasticsearch import Elasticsearch

        client = Elasticsearch(bridge.url, http_compress=True)
    else:
        from opensearchpy import OpenSearch

        client = OpenSearch(bridge.url, http_compress=True)
    try:
        response = search(client, engine.index, {"query": {"match": {"text": query}}, "ext": RERANK})
        assert response["rerank"]["reranked"] is True
        with pytest.raises(Exception) as raised:
            search(client, f"{engine.index}-missing", {"query": {"match": {"text": query}}, "ext": RERANK})
        status, body = failure(raised.value)
        assert status == 404 and body["error"]["type"] == "index_not_found_exception"
        if engine.kind == "elasticsearch":
            assert raised.value.meta.headers["X-Elastic-Product"] == "Elasticsearch"  # type: ignore[attr-defined]
            assert raised.value.meta.headers["X-Request-Id"]  # type: ignore[attr-defined]
        with pytest.raises(Exception) as refused:
            client.index(index=engine.index, id="written", body={"text": "x"})
        assert failure(refused.value)[0] == 403
        assert not engine.client.exists(index=engine.index, id="written")
    finally:
        client.close()


def read_answers(client: Any, engine: Engine, query: str, doc_id: str) -> list[Any]:
    """count, field_caps, validate_query, explain and indices.exists, as each client is called."""
    match = {"match": {"text": query}}
    if engine.kind == "elasticsearch":
        count = client.count(index=engine.index, query=match)
        valid = client.indices.validate_query(index=engine.index, query=match, explain=True)
        explained = client.explain(index=engine.index, id=doc_id, query=match)
    else:
        count = client.count(index=engine.index, body={"query": match})
        valid = client.indices.validate_query(index=engine.index, body={"query": match}, explain=True)
        explained = client.explain(index=engine.index, id=doc_id, body={"query": match})
    caps = client.field_caps(index=engine.index, fields="text,lang")
    exists = (
        client.indices.exists(index=engine.index),
        client.indices.exists(index=f"{engine.index}-missing"),
    )
    return [plain(count), plain(caps), plain(valid), plain(explained), exists]


def test_read_only_apis_answer_as_the_engine(engine: Engine, through: Any, query: str) -> None:
    doc_id = ids(search(engine.client, engine.index, {"query": {"match": {"text": query}}, "size": 1}))[0]
    bridged = read_answers(through, engine, query, doc_id)
    assert bridged == read_answers(engine.client, engine, query, doc_id)
    assert bridged[0]["count"] > 0 and bridged[3]["matched"] is True and bridged[4] == (True, False)


def test_dsl_count_through_the_bridge(engine: Engine, through: Any) -> None:
    """elasticsearch.dsl's (and opensearch-py's) Search.count(), which calls _count."""
    if engine.kind == "elasticsearch":
        from elasticsearch.dsl import Search
    else:
        from opensearchpy import Search  # type: ignore[assignment]
    bridged = Search(using=through, index=engine.index).query("term", lang="en").count()
    direct = Search(using=engine.client, index=engine.index).query("term", lang="en").count()
    assert bridged == direct > 0


def open_pit(client: Any, kind: str, index: str) -> str:
    if kind == "elasticsearch":
        return str(plain(client.open_point_in_time(index=index, keep_alive="1m"))["id"])
    return str(plain(client.create_pit(index=index, keep_alive="1m"))["pit_id"])


def close_pit(client: Any, kind: str, pit_id: str) -> dict[str, Any]:
    if kind == "elasticsearch":
        return plain(client.close_point_in_time(id=pit_id))
    return plain(client.delete_pit(body={"pit_id": [pit_id]}))


def pit_pages(client: Any, kind: str, pit_id: str) -> list[str]:
    """Every English document, three pages through a point in time."""
    seen: list[str] = []
    body: dict[str, Any] = {
        "query": {"term": {"lang": "en"}},
        "size": 100,
        "sort": [{"article": "asc"}, "_doc"],
        "pit": {"id": pit_id, "keep_alive": "1m"},
    }
    while True:
        page = search(client, "", body) if kind == "opensearch" else plain(client.search(**body))
        hits = page["hits"]["hits"]
        if not hits:
            return seen
        seen += [hit["_id"] for hit in hits]
        body["pit"]["id"] = page.get("pit_id", pit_id)
        body["search_after"] = hits[-1]["sort"]


def test_points_in_time_open_page_and_close_as_on_the_engine(
    engine: Engine, through: Any, corpus: Corpus
) -> None:
    english = sum(doc["metadata"]["lang"] == "en" for doc in corpus.docs)
    bridged_pit = open_pit(through, engine.kind, engine.index)
    direct_pit = open_pit(engine.client, engine.kind, engine.index)
    bridged, direct = (
        pit_pages(through, engine.kind, bridged_pit),
        pit_pages(engine.client, engine.kind, direct_pit),
    )
    assert bridged == direct and len(set(bridged)) == english
    # A point in time this caller did not open through the bridge is unknown to it.
    with pytest.raises(Exception) as unknown:
        pit_pages(through, engine.kind, direct_pit)
    assert failure(unknown.value)[0] == 404
    closed = json.dumps(close_pit(through, engine.kind, bridged_pit)).replace(bridged_pit, "ID")
    assert closed == json.dumps(close_pit(engine.client, engine.kind, direct_pit)).replace(direct_pit, "ID")
    with pytest.raises(Exception) as again:
        close_pit(through, engine.kind, bridged_pit)
    assert failure(again.value)[0] == 404


def test_scrolls_by_path_and_body_and_clearing_all_of_the_callers(
    engine: Engine, bridge: RunningBridge, through: Any
) -> None:
    body = {"query": {"term": {"lang": "en"}}, "sort": ["_doc"], "size": 50}
    first = search(through, engine.index, body, scroll="1m")
    by_body = plain(through.scroll(scroll_id=first["_scroll_id"], scroll="1m"))
    # The path form (deprecated, still served by the engines), as older clients send it.
    request = urllib.request.Request(f"{bridge.url}/_search/scroll/{by_body['_scroll_id']}?scroll=1m")
    with urllib.request.urlopen(request, timeout=60) as answer:
        by_path = json.load(answer)
    seen = ids(first) + ids(by_body) + ids(by_path)
    assert len(seen) == len(set(seen)) == 150
    second = search(through, engine.index, body, scroll="1m")
    # opensearch-py sends DELETE /_search/scroll/_all; elasticsearch-py {"scroll_id": "_all"}.
    cleared = plain(through.clear_scroll(scroll_id="_all"))
    assert cleared == {"succeeded": True, "num_freed": 2}
    for scroll_id in (by_path["_scroll_id"], second["_scroll_id"]):
        with pytest.raises(Exception) as gone:
            through.scroll(scroll_id=scroll_id, scroll="1m")
        assert failure(gone.value)[0] == 404
    # What the engine answers to the same call, with one scroll of its own open.
    search(engine.client, engine.index, body, scroll="1m")
    assert plain(engine.client.clear_scroll(scroll_id="_all")) == {"succeeded": True, "num_freed": 1}
