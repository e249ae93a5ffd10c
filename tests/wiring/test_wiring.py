"""`rerank-bridge wire` for Elasticsearch: the `custom` rerank inference endpoint.

The inference API lives in x-pack, which these machines cannot obtain, so the
endpoint is checked against Elasticsearch's documented schema for the custom
service (elasticsearch-specification: inference.put_custom, CustomServiceSettings,
CustomResponseParams) and its templates are filled in as the custom service does
and sent to a real bridge, whose answer the json_parser paths must read. Against
a real Elasticsearch without x-pack, the command says what the cluster lacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.devtools import checkout
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.wiring import opensearch
from rerank_bridge.wiring.elasticsearch import DEFINITION_HEADER, endpoint_definition
from rerank_bridge.wiring.endpoints import Bridge, Report
from rerank_bridge.wiring.engine_http import EngineAnswer, WiringError
from support.bridge_runner import RunningBridge
from support.command_extras import run_alone
from support.live_fixtures import EngineAt

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# inference.put_custom's body for the rerank task: every key the specification
# names, and no other (chunking_settings does not apply to rerank).
CUSTOM_RERANK_SCHEMA = {
    "type": "object",
    "required": ["service", "service_settings"],
    "additionalProperties": False,
    "properties": {
        "service": {"const": "custom"},
        "task_settings": {"type": "object", "properties": {"parameters": {"type": "object"}}},
        "service_settings": {
            "type": "object",
            "required": ["request", "response", "secret_parameters"],
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string", "pattern": "^https?://"},
                "headers": STRING_MAP,
                "query_parameters": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
                },
                "secret_parameters": STRING_MAP,
                "input_type": {"type": "object"},
                "batch_size": {"type": "integer", "minimum": 1},
                # A string-escaped JSON body on one line.
                "request": {"type": "string", "pattern": "^[^\\n]*$"},
                "response": {
                    "type": "object",
                    "required": ["json_parser"],
                    "additionalProperties": False,
                    "properties": {
                        "json_parser": {
                            "type": "object",
                            "required": ["relevance_score"],
                            "additionalProperties": False,
                            "properties": {
                                "relevance_score": {"type": "string", "pattern": "^\\$"},
                                "reranked_index": {"type": "string", "pattern": "^\\$"},
                                "document_text": {"type": "string", "pattern": "^\\$"},
                            },
                        },
                        "error_parser": {"type": "object"},
                    },
                },
            },
        },
    },
}
# The templates the custom service fills in for a rerank request.
PREDEFINED = {"input", "query", "top_n", "return_documents", "input_type"}
TEMPLATE = re.compile(r"\$\{([^}]+)\}")
DOCUMENTS = ["the river runs by the city", "a mountain", "rivers and cities", "city river city"]


def json_path(document: Any, path: str) -> list[Any]:
    """The `$.a[*].b` paths of the custom service's json_parser."""
    assert re.fullmatch(r"\$(\.\w+(\[\*\])?)+", path), path
    nodes = [document]
    for step in path[2:].split("."):
        name, star = step.removesuffix("[*]"), step.endswith("[*]")
        nodes = [node[name] for node in nodes]
        if star:
            nodes = [item for node in nodes for item in node]
    return nodes


def fill_in(text: str, values: dict[str, Any], secrets: dict[str, str]) -> str:
    """Template replacement as the custom service does it: the predefined values as
    JSON, secret parameters as they are."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return secrets[name] if name in secrets else json.dumps(values[name])

    return TEMPLATE.sub(value, text)


@pytest.fixture(scope="module")
def bridge(fake_server: BackgroundServer) -> Iterator[RunningBridge]:
    # No engine behind it: /v2/rerank talks to the scoring server only.
    config = BridgeConfig(
        engine_url="http://127.0.0.1:9",
        engine_kind="elasticsearch",
        reranker=fake_server.address,
        api_keys=frozenset({"es-key"}),
    )
    with RunningBridge(config) as running:
        yield running


def test_the_endpoint_follows_the_documented_custom_service_schema() -> None:
    definition = endpoint_definition(Bridge("http://rerank-bridge:8080", "es-key", "jina-reranker-v3"))
    jsonschema.validate(definition, CUSTOM_RERANK_SCHEMA)
    settings = definition["service_settings"]
    assert settings["url"] == "http://rerank-bridge:8080/v2/rerank"
    known = PREDEFINED | set(settings["secret_parameters"])
    for where in (settings["url"], settings["request"], *settings["headers"].values()):
        assert set(TEMPLATE.findall(where)) <= known, where
        # "Templates should not be surrounded by quotes."
        assert not re.search(r'"\$\{[^}]+\}"', where), where
    assert "es-key" not in json.dumps({k: v for k, v in settings.items() if k != "secret_parameters"})


def test_a_changed_key_or_url_changes_the_fingerprint_and_nothing_else_does() -> None:
    def mark(bridge: Bridge) -> str:
        return str(endpoint_definition(bridge)["service_settings"]["headers"][DEFINITION_HEADER])

    base = Bridge("http://rerank-bridge:8080", "k1")
    assert mark(base) == mark(Bridge("http://rerank-bridge:8080", "k1"))
    assert (
        len({mark(base), mark(Bridge("http://rerank-bridge:8080", "k2")), mark(Bridge("http://x:1", "k1"))})
        == 3
    )


def test_the_bridge_answers_what_the_endpoint_sends_and_its_parser_reads_the_answer(
    bridge: RunningBridge,
) -> None:
    definition = endpoint_definition(Bridge(bridge.url, "es-key", "fake"))
    settings = definition["service_settings"]
    secrets = settings["secret_parameters"]
    query = 'river "city" \\ é'
    values = {"query": query, "input": DOCUMENTS}
    request = urllib.request.Request(
        fill_in(settings["url"], values, secrets),
        data=fill_in(settings["request"], values, secrets).encode(),
        method="POST",
        headers={name: fill_in(value, values, secrets) for name, value in settings["headers"].items()},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    parser = settings["response"]["json_parser"]
    scores = json_path(answer, parser["relevance_score"])
    indices = json_path(answer, parser["reranked_index"])
    assert sorted(indices) == list(range(len(DOCUMENTS))) and len(scores) == len(DOCUMENTS)
    assert scores == sorted(scores, reverse=True)
    # Both documents holding both words score 1.0 with the fake model; ties keep input order.
    assert indices[:2] == [0, 3]


@pytest.mark.live
@pytest.mark.engines("elasticsearch")
def test_wire_on_a_cluster_without_the_inference_api_says_what_it_needs(engine_url: EngineAt) -> None:
    process = run_alone(
        "wire",
        "elasticsearch",
        "--engine-url",
        engine_url.url,
        "--bridge-url",
        "http://127.0.0.1:8080",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "RERANK_BRIDGE_API_KEY": "es-key"},
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "no inference API" in err and "licence" in err and "trial" in err
    assert out == ""


def test_the_docs_show_the_endpoint_the_command_creates() -> None:
    readme = (checkout.root() / "docs" / "engine-hooks.md").read_text()
    blocks = re.findall(r"```json\n(\{\n  \"service\": \"custom\".*?)\n```", readme, re.DOTALL)
    assert len(blocks) == 1
    assert json.loads(blocks[0]) == endpoint_definition(
        Bridge("http://rerank-bridge:8080", "<the key>", "jina-reranker-v3")
    )


class DeployFails:
    """An engine whose ml-commons never deploys the model (as when a memory breaker is open)."""

    kind = "opensearch"

    def call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        return EngineAnswer(200, {"model_state": "DEPLOY_FAILED"})


def test_a_failed_deploy_points_at_the_memory_breakers() -> None:
    with pytest.raises(WiringError) as failed:
        opensearch._wait_deployed(DeployFails(), "model-1")  # type: ignore[arg-type]
    assert "model-1 is DEPLOY_FAILED" in str(failed.value)
    assert "native_memory_threshold" in str(failed.value) and "jvm_heap_memory_threshold" in str(failed.value)


class DeployRace:
    """An engine where another ml-commons task deploys the model while `wire` asks for it."""

    kind = "opensearch"

    def __init__(self) -> None:
        self.states = iter(["REGISTERED", "DEPLOYING", "DEPLOYED", "DEPLOYED"])
        self.deploys = 0

    def call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        if path.endswith("/_deploy"):
            self.deploys += 1
            raise WiringError(f"POST {path} answered 500: version_conflict_engine_exception")
        return EngineAnswer(200, {"model_state": next(self.states)})


def test_a_deploy_racing_another_task_waits_for_it_instead_of_failing() -> None:
    engine = DeployRace()
    assert opensearch._deploy(engine, "model-1") is False  # type: ignore[arg-type]
    assert engine.deploys == 1


class LaggingModelIndex:
    """An engine whose model index lists models on a connector for a while after their
    delete (or before the model search sees them), so the connector's delete answers 409
    naming them, as ml-commons did in loaded CI runs. `owners`: each model's connector."""

    kind = "opensearch"

    def __init__(self, owners: dict[str, str], refusals: int) -> None:
        self.owners, self.refusals = owners, refusals
        self.connector_deletes, self.model_deletes = 0, list[str]()

    def call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        model = path.rsplit("/models/", 1)[-1].split("/")[0]
        if method == "GET":
            if model not in self.owners:
                return EngineAnswer(404, {})
            return EngineAnswer(200, {"connector_id": self.owners[model]})
        if method == "DELETE" and "/models/" in path:
            self.model_deletes.append(model)
        elif method == "DELETE":
            self.connector_deletes += 1
            if self.connector_deletes <= self.refusals:
                raise WiringError(
                    f"DELETE {path} answered 409: {len(self.owners)} models are still using this "
                    f"connector, please delete or update the models first: [{', '.join(self.owners)}]"
                )
        return EngineAnswer(200, {})


def test_a_connector_delete_waits_out_the_model_index_lag() -> None:
    engine = LaggingModelIndex({"model-old": "connector-1"}, refusals=2)
    deleted = opensearch._delete_connector(engine, "connector-1", {"model-old"}, Report())  # type: ignore[arg-type]
    assert deleted is True and engine.connector_deletes == 3 and engine.model_deletes == []


def test_a_model_on_the_connector_the_search_missed_is_deleted_before_the_connector() -> None:
    owners = {"model-old": "connector-1", "model-unseen": "connector-1"}
    engine = LaggingModelIndex(owners, refusals=2)
    report = Report()
    opensearch._delete_connector(engine, "connector-1", {"model-old"}, report)  # type: ignore[arg-type]
    assert engine.model_deletes == ["model-unseen"] and engine.connector_deletes == 3
    assert f"{'deleted':<9} stale model model-unseen" in report.lines


def test_a_refusal_naming_only_other_connectors_models_keeps_the_connector_and_deletes_nothing() -> None:
    # ml-commons matches connector ids as text: ids sharing a token name each other's models.
    engine = LaggingModelIndex({"someone-elses-model": "connector-2"}, refusals=100)
    report = Report()
    deleted = opensearch._delete_connector(engine, "connector-1", {"model-old"}, report)  # type: ignore[arg-type]
    assert deleted is False and engine.connector_deletes == 1 and engine.model_deletes == []
    (kept,) = report.lines
    assert kept.startswith(f"{'kept':<9} stale connector connector-1:") and "someone-elses-model" in kept


def test_a_refusal_naming_a_lagging_model_and_another_connectors_waits_out_the_lag_then_keeps() -> None:
    class LagThenOthers(LaggingModelIndex):
        """The first refusal names our deleted model too; later ones only the other's."""

        def call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
            if method == "DELETE" and "/models/" not in path and self.connector_deletes >= 1:
                self.owners.pop("model-old", None)
            return super().call(method, path, body, missing_ok)

    engine = LagThenOthers({"model-old": "connector-1", "someone-elses-model": "connector-2"}, refusals=100)
    deleted = opensearch._delete_connector(engine, "connector-1", {"model-old"}, Report())  # type: ignore[arg-type]
    assert deleted is False and engine.connector_deletes == 2 and engine.model_deletes == []
