"""OpenSearch's own reranking pointed at rerank-bridge, on a real node with
ml-commons and neural-search (the 2.19.1-neural release): `rerank-bridge wire`
run as users run it, then searches through the engine's search pipelines.

The rerank processor sends the page's hits to the bridge's /v2/rerank through an
ml-commons connector; its order and scores must equal the scoring server's for
the same query and texts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.devtools.local_engines import NEURAL_RELEASE
from rerank_bridge.search import (
    Hybrid,
    KnnSearch,
    RequestError,
    RerankClient,
    RerankingSearch,
    RerankSettings,
)
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.command_extras import run_alone
from support.live_fixtures import Corpus, Engine, EngineAt, indexed_corpus, running_engine
from support.search_checks import WINDOW, assert_ordered_by_reranker, first_stage, ids, match

pytestmark = pytest.mark.live
KEY, ROTATED_KEY = "native-rerank-key", "rotated-rerank-key"
# The settings a remote connector to a loopback bridge needs, none set on a fresh node.
NEEDED_SETTINGS = (
    "plugins.ml_commons.trusted_connector_endpoints_regex",
    "plugins.ml_commons.connector.private_ip_enabled",
    "plugins.ml_commons.only_run_on_ml_node",
)


@dataclass
class Wire:
    returncode: int
    out: str
    err: str


def wire(engine_url: str, bridge_url: str, *args: str, key: str = KEY) -> Wire:
    """`rerank-bridge wire opensearch` with only the connectors extra importable."""
    process = run_alone(
        "wire",
        "opensearch",
        "--engine-url",
        engine_url,
        "--bridge-url",
        bridge_url,
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "RERANK_BRIDGE_API_KEY": key},
    )
    out, err = process.communicate(timeout=120)
    return Wire(process.returncode, out, err)


@pytest.fixture(scope="module")
def neural_engine(corpus: Corpus) -> Iterator[Engine]:
    url = os.environ.get("OS_NEURAL_URL")
    if url:
        with indexed_corpus(EngineAt("opensearch", url, f"OS_NEURAL_URL={url}"), corpus) as engine:
            yield engine
        return
    with running_engine(NEURAL_RELEASE.name) as running, indexed_corpus(running, corpus) as engine:
        yield engine


@pytest.fixture(scope="module")
def bridge(neural_engine: Engine, scoring_server: BackgroundServer) -> Iterator[RunningBridge]:
    keys = frozenset({KEY, ROTATED_KEY})
    config = BridgeConfig(engine_url=neural_engine.url, reranker=scoring_server.address, api_keys=keys)
    with RunningBridge(config) as running:
        yield running


@pytest.fixture(scope="module")
def first_wirings(neural_engine: Engine, bridge: RunningBridge) -> list[Wire]:
    """On the fresh node: without settings, with --apply-settings, then once more."""
    return [
        wire(neural_engine.url, bridge.url),
        wire(neural_engine.url, bridge.url, "--apply-settings"),
        wire(neural_engine.url, bridge.url),
    ]


def pipeline_search(engine: Engine, body: dict[str, Any], pipeline: str, query: str) -> dict[str, Any]:
    body = {**body, "ext": {"rerank": {"query_context": {"query_text": query}}}}
    return dict(engine.client.search(index=engine.index, body=body, params={"search_pipeline": pipeline}))


def test_wire_names_missing_settings_then_creates_then_changes_nothing(first_wirings: list[Wire]) -> None:
    refused, created, again = first_wirings
    assert refused.returncode != 0
    for setting in NEEDED_SETTINGS:
        assert setting in refused.err
    assert "PUT _cluster/settings" in refused.err
    assert created.returncode == 0, created.err
    actions = [line.split()[:2] for line in created.out.splitlines() if not line.startswith("ready")]
    assert actions == [
        ["set", "plugins.ml_commons.trusted_connector_endpoints_regex,"],
        ["created", "connector"],
        ["created", "model"],
        ["created", "model"],
        ["created", "search"],
    ]
    assert again.returncode == 0, again.err
    lines = [line for line in again.out.splitlines() if not line.startswith("ready")]
    assert lines and all(line.startswith("unchanged") for line in lines), again.out


@pytest.mark.parametrize("query_index", [3, 11])
def test_the_engines_rerank_processor_orders_and_scores_as_the_scoring_server(
    first_wirings: list[Wire], neural_engine: Engine, reranker: RerankClient, corpus: Corpus, query_index: int
) -> None:
    query = str(corpus.queries[query_index]["text"])
    response = pipeline_search(neural_engine, match(query), "rerank-bridge", query)
    window = first_stage(neural_engine, match(query))
    assert_ordered_by_reranker(response, window, reranker, query)
    assert ids(response) != ids(window)


def test_query_text_with_quotes_backslashes_and_non_ascii_reaches_the_model_intact(
    first_wirings: list[Wire], neural_engine: Engine, reranker: RerankClient, corpus: Corpus
) -> None:
    # The connector's request template puts the query inside quotes; ml-commons must escape it.
    query = str(corpus.queries[5]["text"]) + ' "Zitat" \\ back\\slash – Größe 🙂'
    response = pipeline_search(neural_engine, match(query), "rerank-bridge", query)
    assert_ordered_by_reranker(response, first_stage(neural_engine, match(query)), reranker, query)


def test_with_the_bridge_down_the_search_fails_and_ignore_failure_keeps_the_first_stage(
    first_wirings: list[Wire], neural_engine: Engine, scoring_server: BackgroundServer, corpus: Corpus
) -> None:
    query = str(corpus.queries[7]["text"])
    config = BridgeConfig(
        engine_url=neural_engine.url, reranker=scoring_server.address, api_keys=frozenset({KEY})
    )
    with RunningBridge(config) as doomed:
        for name, extra in (("strict", ()), ("lenient", ("--ignore-failure",))):
            done = wire(neural_engine.url, doomed.url, "--apply-settings", "--name", name, *extra)
            assert done.returncode == 0, done.err
        assert pipeline_search(neural_engine, match(query), "strict", query)["hits"]["hits"]
    window = first_stage(neural_engine, match(query))
    with pytest.raises(Exception) as failed:
        pipeline_search(neural_engine, match(query), "strict", query)
    assert getattr(failed.value, "status_code", None) == 500
    assert "Connection refused" in str(getattr(failed.value, "info", failed.value))
    lenient = pipeline_search(neural_engine, match(query), "lenient", query)
    assert ids(lenient) == ids(window)
    assert [hit["_score"] for hit in lenient["hits"]["hits"]] == [
        hit["_score"] for hit in window["hits"]["hits"]
    ]


def test_native_hybrid_runs_through_a_normalization_pipeline_and_its_window_is_reranked(
    first_wirings: list[Wire],
    neural_engine: Engine,
    bridge: RunningBridge,
    reranker: RerankClient,
    corpus: Corpus,
) -> None:
    made = wire(
        neural_engine.url, bridge.url, "--no-rerank", "--hybrid", "normalization", "--name", "hybrid-norm"
    )
    assert made.returncode == 0, made.err
    assert made.out.splitlines()[0].split()[:3] == ["created", "search", "pipeline"]
    query = str(corpus.queries[3]["text"])
    search = RerankingSearch(neural_engine.client, reranker)
    settings = RerankSettings(fields=("text",), query_text=query, rank_window_size=WINDOW)
    response = search.search(
        neural_engine.index,
        match(query),
        rerank=settings,
        knn=KnnSearch(field="vector"),
        hybrid=Hybrid(native=True, pipeline="hybrid-norm"),
    )
    assert response["rerank"]["reranked"] is True
    hits = response["hits"]["hits"]
    assert len(hits) == len({hit["_id"] for hit in hits}) == WINDOW
    # min-max normalised and averaged: every fused score lies in [0, 1], which raw BM25 does not.
    fused = [hit["_rerank"]["first_stage_score"] for hit in hits]
    assert all(0 <= score <= 1 for score in fused)
    assert first_stage(neural_engine, match(query))["hits"]["hits"][0]["_score"] > 1
    texts = [(hit["_id"], hit["_source"]["text"]) for hit in hits]
    direct = reranker.rerank(query, texts)
    assert [d.id for d in direct.documents] == [hit["_id"] for hit in hits]


def test_a_hybrid_query_without_its_pipeline_is_refused_since_the_engine_repeats_hits(
    neural_engine: Engine, reranker: RerankClient, corpus: Corpus
) -> None:
    query = str(corpus.queries[3]["text"])
    vector = reranker.embed([query])[0]
    hybrid = {
        "hybrid": {"queries": [{"match": {"text": query}}, {"knn": {"vector": {"vector": vector, "k": 10}}}]}
    }
    raw = first_stage(neural_engine, {"query": hybrid, "size": 10})
    assert len(ids(raw)) > len(set(ids(raw)))  # what the connector must never rerank
    search = RerankingSearch(neural_engine.client, reranker)
    with pytest.raises(RequestError) as refused:
        search.search(
            neural_engine.index,
            match(query),
            rerank=RerankSettings(fields=("text",), query_text=query),
            knn=KnnSearch(field="vector"),
            hybrid=Hybrid(native=True),
        )
    assert refused.value.field == "hybrid.pipeline"


def test_a_rotated_key_replaces_connector_and_model_and_retires_the_old_ones(
    first_wirings: list[Wire],
    neural_engine: Engine,
    bridge: RunningBridge,
    reranker: RerankClient,
    corpus: Corpus,
) -> None:
    rotated = wire(neural_engine.url, bridge.url, "--name", "rotation")
    assert rotated.returncode == 0, rotated.err
    before = neural_engine.client.transport.perform_request("GET", "/_search/pipeline/rotation")
    old_model = before["rotation"]["response_processors"][0]["rerank"]["ml_opensearch"]["model_id"]
    rotated = wire(neural_engine.url, bridge.url, "--name", "rotation", key=ROTATED_KEY)
    assert rotated.returncode == 0, rotated.err
    actions = [
        " ".join(line.split()[:2]) for line in rotated.out.splitlines() if not line.startswith("ready")
    ]
    assert actions[:5] == [
        "created connector",
        "unchanged model",  # the model group
        "created model",
        "replaced search",
        "deleted stale",  # the old model
    ]
    # The old connector goes, unless ml-commons' delete check (a match query on the text
    # field connector_id) names another wiring's model whose id shares a token with it:
    # then it is kept, model-less, naming that model (tests/wiring/test_wiring.py).
    retired = rotated.out.splitlines()[5]
    if actions[5] == "kept stale":
        old_connector = retired.split(":", 1)[0].split()[-1]
        for model_id in retired.split("(", 1)[1].split(")", 1)[0].split(", "):
            other = neural_engine.client.transport.perform_request("GET", f"/_plugins/_ml/models/{model_id}")
            assert other["connector_id"] != old_connector, retired
    else:
        assert actions[5:] == ["deleted stale"] and "connector" in retired, rotated.out
    with pytest.raises(Exception) as gone:
        neural_engine.client.transport.perform_request("GET", f"/_plugins/_ml/models/{old_model}")
    assert getattr(gone.value, "status_code", None) == 404
    query = str(corpus.queries[9]["text"])
    response = pipeline_search(neural_engine, match(query), "rotation", query)
    assert_ordered_by_reranker(response, first_stage(neural_engine, match(query)), reranker, query)


def test_one_pipeline_fuses_a_hybrid_query_with_rrf_then_reranks_the_page(
    first_wirings: list[Wire],
    neural_engine: Engine,
    bridge: RunningBridge,
    reranker: RerankClient,
    corpus: Corpus,
) -> None:
    made = wire(neural_engine.url, bridge.url, "--hybrid", "rrf", "--name", "hybrid-rerank")
    assert made.returncode == 0, made.err
    query = str(corpus.queries[3]["text"])
    vector = reranker.embed([query])[0]
    queries = [{"match": {"text": query}}, {"knn": {"vector": {"vector": vector, "k": WINDOW}}}]
    body = {"query": {"hybrid": {"queries": queries}}, "size": WINDOW}
    response = pipeline_search(neural_engine, body, "hybrid-rerank", query)
    assert len(set(ids(response))) == len(ids(response)) == WINDOW
    texts = [(hit["_id"], hit["_source"]["text"]) for hit in response["hits"]["hits"]]
    direct = reranker.rerank(query, texts)
    assert [d.id for d in direct.documents] == ids(response)
    assert [hit["_score"] for hit in response["hits"]["hits"]] == pytest.approx(
        [d.score for d in direct.documents], abs=1e-6
    )
