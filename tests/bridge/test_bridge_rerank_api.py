"""/v1/rerank (Jina shape) and /v2/rerank (Cohere v2 shape), checked against
the parsing rules the engines' own reranking hooks apply to them."""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_bridge.bridge.config import BridgeConfig, load_config
from rerank_bridge.bridge.rerank_api import shortest_float32
from rerank_bridge.server.app import BackgroundServer
from support.bridge_runner import RunningBridge
from support.raw_http import send

JSON = {"Content-Type": "application/json"}
DOCUMENTS = ["the river runs by the city", "a mountain", "rivers and cities", "city river city"]


@pytest.fixture(scope="module")
def bridge(fake_server: BackgroundServer) -> Iterator[RunningBridge]:
    # No engine behind it: these routes talk to the scoring server only.
    config = BridgeConfig(
        engine_url="http://127.0.0.1:9", engine_kind="elasticsearch", reranker=fake_server.address
    )
    with RunningBridge(config) as running:
        yield running


def post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_cohere_shape_carries_only_index_and_relevance_score(bridge: RunningBridge) -> None:
    status, body = post(
        f"{bridge.url}/v2/rerank", {"model": "fake", "query": "river city", "documents": DOCUMENTS}
    )
    assert status == 200
    assert set(body) == {"id", "results", "meta"}
    assert all(set(result) == {"index", "relevance_score"} for result in body["results"])
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r["index"] for r in body["results"]) == [0, 1, 2, 3]


def test_opensearch_cohere_post_process_reads_the_response(bridge: RunningBridge) -> None:
    """ml-commons' connector.post_process.cohere.rerank: results[].index and
    relevance_score, put back into document order."""
    status, body = post(f"{bridge.url}/v2/rerank", {"query": "river", "documents": DOCUMENTS})
    assert status == 200
    by_document = sorted(body["results"], key=lambda result: result["index"])
    assert [r["index"] for r in by_document] == list(range(len(DOCUMENTS)))
    assert all(isinstance(r["relevance_score"], float) for r in by_document)


@settings(max_examples=2000)
@given(st.floats(min_value=-(2.0**40), max_value=2.0**40, width=32))
def test_scores_are_written_short_enough_for_ml_commons_and_lose_nothing(score: float) -> None:
    """ml-commons reads a number of over 18 characters as a BigDecimal, which its
    Cohere post-processing cannot cast; the float32 the model gave survives. (Any
    score a model gives; from 1e15 up Python writes 16 digits and `.0`.)"""
    written = json.dumps(shortest_float32(score))
    assert len(written) <= 18, written
    assert struct.unpack("f", struct.pack("f", json.loads(written)))[0] == score


def test_jina_shape_returns_documents_and_usage(bridge: RunningBridge) -> None:
    status, body = post(
        f"{bridge.url}/v1/rerank",
        {"query": "mountain", "documents": [{"text": d} for d in DOCUMENTS], "top_n": 2},
    )
    assert status == 200
    assert body["model"] == "fake" and body["usage"]["total_tokens"] > 0
    assert body["results"][0]["document"]["text"] == "a mountain"
    assert len(body["results"]) == 2


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"documents": ["a"]}, 400, "query"),
        ({"query": "q", "documents": []}, 400, "documents"),
        ({"query": "q", "documents": [3]}, 400, "documents[0]"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 400, "top_n"),
        ({"query": "q", "documents": ["a", ""]}, 400, "documents[1].text"),
        ({"model": "other", "query": "q", "documents": ["a"]}, 404, "other"),
    ],
)
def test_bad_rerank_calls_name_the_problem(
    bridge: RunningBridge, body: Any, status: int, message: str
) -> None:
    got, answer = post(f"{bridge.url}/v2/rerank", body)
    assert got == status
    assert message in answer["message"]


def test_config_file_reads_secrets_from_the_environment(tmp_path: Any) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "engine: {url: 'http://es:9200', username_env: U, password_env: P}\n"
        "api_keys_env: KEYS\n"
        "indices: {'docs*': {fields: [title, text], rank_window_size: 30}}\n"
    )
    config = load_config(path, {"U": "elastic", "P": "s3cret", "KEYS": "k1, k2"})
    assert (config.engine_username, config.engine_password) == ("elastic", "s3cret")
    assert config.api_keys == {"k1", "k2"}
    assert "s3cret" not in repr(config)
    settings = config.rerank_for("docs-2024")
    assert settings is not None and settings.rank_window_size == 30
    assert config.rerank_for("other") is None


def test_api_keys_guard_every_route_but_metrics(fake_server: BackgroundServer) -> None:
    config = BridgeConfig(
        engine_url="http://127.0.0.1:9",
        engine_kind="elasticsearch",
        reranker=fake_server.address,
        api_keys=frozenset({"k1"}),
    )
    call = json.dumps({"query": "q", "documents": ["a"]}).encode()
    with RunningBridge(config) as bridge:
        for headers in ({}, {"Authorization": "Bearer k2"}, {"X-Api-Key": "k11"}):
            refused = send(bridge.port, "POST", "/v2/rerank", {**JSON, **headers}, call)
            assert refused.status == 401 and refused.json()["error"]["type"] == "security_exception"
            assert refused.headers["www-authenticate"].startswith("Bearer")
        # Refused before its target is even read: a caller without a key learns nothing of the routes.
        assert send(bridge.port, "PUT", "/docs%2F_doc/1").status == 401
        for headers in ({"Authorization": "Bearer k1"}, {"Authorization": "ApiKey k1"}, {"X-Api-Key": "k1"}):
            assert send(bridge.port, "POST", "/v2/rerank", {**JSON, **headers}, call).status == 200
        assert send(bridge.port, "GET", "/metrics").status == 200


def test_the_cohere_sdk_reranks_through_the_bridge(bridge: RunningBridge) -> None:
    """What a Cohere user runs, pointed at the bridge: results, and errors as the SDK's own types."""
    import cohere

    client = cohere.ClientV2(api_key="unused-without-api-keys", base_url=bridge.url)
    response = client.rerank(model="fake", query="river city", documents=DOCUMENTS, top_n=3)
    assert [result.index for result in response.results][:2] == [0, 3] and len(response.results) == 3
    scores = [result.relevance_score for result in response.results]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(cohere.errors.NotFoundError) as missing:
        client.rerank(model="rerank-v3.5", query="river", documents=DOCUMENTS)
    assert "model" in missing.value.body["message"]
    with pytest.raises(cohere.errors.BadRequestError) as bad:
        client.rerank(model="fake", query="river", documents=DOCUMENTS, max_tokens_per_doc=0)
    assert bad.value.body["error"]["field"] == "max_tokens_per_doc"


def test_max_tokens_per_doc_is_the_token_cap_the_model_reads_to(bridge: RunningBridge) -> None:
    """Cohere's max_tokens_per_doc: a document is read up to that many tokens (the fake
    model's tokens are words), so a word past the cap no longer counts."""
    document = " ".join(["filler"] * 30 + ["zebra"])
    scores = {}
    for cap in (10, 100):
        status, body = post(
            f"{bridge.url}/v2/rerank", {"query": "zebra", "documents": [document], "max_tokens_per_doc": cap}
        )
        assert status == 200
        scores[cap] = body["results"][0]["relevance_score"]
    assert scores[10] < scores[100]


def test_a_blend_mixes_the_callers_first_stage_scores_in_before_top_n(bridge: RunningBridge) -> None:
    plain = post(f"{bridge.url}/v2/rerank", {"query": "river city", "documents": DOCUMENTS})[1]
    first_stage = [4.0, 3.0, 2.0, 1.0]

    def blended(weight: float, **extra: Any) -> list[dict[str, Any]]:
        call = {
            "query": "river city",
            "documents": DOCUMENTS,
            "first_stage_scores": first_stage,
            "blend": {"weight": weight},
            **extra,
        }
        status, body = post(f"{bridge.url}/v2/rerank", call)
        assert status == 200
        return list(body["results"])

    # Weight 0: the first stage's order, its min-max scores; weight 1: the model's order.
    kept = blended(0)
    assert [r["index"] for r in kept] == [0, 1, 2, 3]
    assert [r["relevance_score"] for r in kept] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert [r["index"] for r in blended(1)] == [r["index"] for r in plain["results"]]
    # Half and half: each score is the mean of the two normalised inputs.
    model = {r["index"]: r["relevance_score"] for r in plain["results"]}
    low, high = min(model.values()), max(model.values())
    half = {r["index"]: r["relevance_score"] for r in blended(0.5)}
    for index, score in half.items():
        expected = 0.5 * (model[index] - low) / (high - low) + 0.5 * (first_stage[index] - 1.0) / 3.0
        assert score == pytest.approx(expected, abs=1e-6)
    # top_n cuts the blended list, not the model's.
    assert blended(0, top_n=2) == kept[:2]


def test_a_blend_without_scores_reads_the_documents_order_and_bad_scores_are_named(
    bridge: RunningBridge,
) -> None:
    call = {"query": "river city", "documents": DOCUMENTS, "blend": {"weight": 0, "normalizer": "rank"}}
    status, body = post(f"{bridge.url}/v2/rerank", call)
    scores = [r["relevance_score"] for r in body["results"]]  # written as float32, as the model scores
    assert status == 200 and scores == pytest.approx([1.0, 1 / 2, 1 / 3, 1 / 4], rel=1e-6)
    for bad, field in (
        ({"first_stage_scores": [1.0, 2.0]}, "first_stage_scores"),
        ({"first_stage_scores": [1.0, "2", 3.0, 4.0]}, "first_stage_scores[1]"),
        ({"blend": {"weight": -0.1}}, "blend.weight"),
    ):
        status, body = post(f"{bridge.url}/v2/rerank", {**call, **bad})
        assert status == 400 and field in body["message"]


def test_the_cohere_sdk_blends_through_its_additional_body_parameters(bridge: RunningBridge) -> None:
    import cohere

    client = cohere.ClientV2(api_key="unused-without-api-keys", base_url=bridge.url)
    extra = {"first_stage_scores": [4.0, 3.0, 2.0, 1.0], "blend": {"weight": 0.0}}
    response = client.rerank(
        model="fake",
        query="river city",
        documents=DOCUMENTS,
        request_options={"additional_body_parameters": extra},
    )
    assert [result.index for result in response.results] == [0, 1, 2, 3]
