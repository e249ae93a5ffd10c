"""OpenSearch: ml-commons connector -> remote model -> search pipeline.

Objects are found by name, and the connector carries a fingerprint of its whole
definition (the key included) in its description: an unchanged definition is
reused as it is; a changed one gets a new connector and model, the pipeline is
pointed at them, and then the stale ones are undeployed and deleted, so the
pipeline never names a model that is gone."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from rerank_bridge.wiring.endpoints import Bridge, Report
from rerank_bridge.wiring.engine_http import EngineHttp, WiringError, fingerprint

ML = "/_plugins/_ml"
SETTINGS = "plugins.ml_commons."
DEPLOY_TIMEOUT_S = 60.0
# How long a connector delete waits for ml-commons' model index to drop models just deleted.
RETIRE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class OpenSearchPlan:
    """What `wire` makes on an OpenSearch cluster: the connector, model and search
    pipeline named `name`, and which processors the pipeline runs."""

    name: str = "rerank-bridge"
    document_fields: tuple[str, ...] = ("text",)
    rerank: bool = True
    ignore_failure: bool = False
    hybrid: Literal["", "normalization", "rrf"] = ""
    keyword_weight: float = 0.5  # normalization: the first sub-query's weight
    rank_constant: int = 60  # rrf


@dataclass(frozen=True)
class MissingSetting:
    key: str
    now: Any
    needed: Any
    why: str


def _effective_settings(http: EngineHttp) -> dict[str, Any]:
    reply = http.call("GET", "/_cluster/settings?include_defaults=true&flat_settings=true").body
    merged: dict[str, Any] = {}
    for layer in ("defaults", "persistent", "transient"):  # later layers win
        for key, value in reply.get(layer, {}).items():
            list_item = re.fullmatch(r"(.+)\.(\d+)", key)
            if list_item and key.startswith(SETTINGS):
                merged.setdefault(list_item.group(1), []).append(value)
            else:
                merged[key] = value
    return merged


def _is_private(host: str) -> bool:
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return any(not ipaddress.ip_address(address.split("%")[0]).is_global for address in addresses)


def _java_full_match(pattern: str, text: str) -> bool:
    # Java's Pattern.matches(); patterns Python cannot read are counted as no match.
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False


def missing_settings(http: EngineHttp, bridge: Bridge) -> list[MissingSetting]:
    """The ml-commons settings a remote connector to this bridge needs and the cluster lacks."""
    settings = _effective_settings(http)
    missing = []
    regexes = settings.get(SETTINGS + "trusted_connector_endpoints_regex", [])
    regexes = regexes if isinstance(regexes, list) else [regexes]
    if not any(_java_full_match(pattern, bridge.rerank_url) for pattern in regexes):
        own = "^" + re.escape(bridge.rerank_url) + "$"
        missing.append(
            MissingSetting(
                SETTINGS + "trusted_connector_endpoints_regex",
                regexes,
                [*regexes, own],
                f"no pattern matches {bridge.rerank_url}",
            )
        )
    host = urlsplit(bridge.url).hostname or ""
    if _is_private(host) and str(settings.get(SETTINGS + "connector.private_ip_enabled", "false")) != "true":
        missing.append(
            MissingSetting(
                SETTINGS + "connector.private_ip_enabled",
                settings.get(SETTINGS + "connector.private_ip_enabled"),
                True,
                f"{host} is a private or loopback address",
            )
        )
    nodes = http.call("GET", "/_nodes/_all?filter_path=nodes.*.roles").body.get("nodes", {})
    has_ml_node = any("ml" in node.get("roles", []) for node in nodes.values())
    if not has_ml_node and str(settings.get(SETTINGS + "only_run_on_ml_node", "true")) != "false":
        missing.append(
            MissingSetting(
                SETTINGS + "only_run_on_ml_node",
                settings.get(SETTINGS + "only_run_on_ml_node"),
                False,
                "the cluster has no node with the ml role",
            )
        )
    return missing


def settings_fix(missing: list[MissingSetting]) -> dict[str, Any]:
    return {"persistent": {setting.key: setting.needed for setting in missing}}


def require_plugins(http: EngineHttp, plan: OpenSearchPlan) -> None:
    nodes = http.call(
        "GET", "/_nodes/plugins?filter_path=nodes.*.plugins.name,nodes.*.plugins.classname"
    ).body
    names = {
        value
        for node in nodes.get("nodes", {}).values()
        for plugin in node.get("plugins", [])
        for value in plugin.values()
    }
    needed = {"neural-search": "org.opensearch.neuralsearch.plugin.NeuralSearch"}
    if plan.rerank:
        needed["ml-commons"] = "org.opensearch.ml.plugin.MachineLearningPlugin"
    absent = [
        name for name, classname in needed.items() if not {name, f"opensearch-{name}", classname} & names
    ]
    if absent:
        raise WiringError(
            f"the cluster lacks the plugin(s) {', '.join(absent)}: the rerank processor needs "
            "ml-commons and neural-search (the OpenSearch distribution bundles both)"
        )


def _search(http: EngineHttp, kind: str, name: str) -> list[dict[str, Any]]:
    body = {"query": {"match_phrase": {"name": name}}, "size": 100}
    reply = http.call("POST", f"{ML}/{kind}/_search", body, missing_ok=True)
    if reply.status == 404:  # the system index does not exist before the first object
        return []
    hits = reply.body.get("hits", {}).get("hits", [])
    return [{"_id": hit["_id"], **hit["_source"]} for hit in hits if hit["_source"].get("name") == name]


def connector_definition(bridge: Bridge, plan: OpenSearchPlan) -> dict[str, Any]:
    fields = [
        '"documents": ${parameters.documents}',
        '"query": "${parameters.query}"',
        '"top_n": ${parameters.top_n}',
    ]
    if bridge.model:
        fields.append('"model": "${parameters.model}"')
    return {
        "name": plan.name,
        "version": "1",
        "protocol": "http",
        # ml-commons refuses a connector without credentials, even where the bridge needs no key.
        "credential": {"api_key": bridge.api_key or "none"},
        "parameters": {"model": bridge.model} if bridge.model else {},
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": bridge.rerank_url,
                "headers": {
                    "Authorization": "Bearer ${credential.api_key}",
                    "Content-Type": "application/json",
                },
                "request_body": "{ " + ", ".join(fields) + " }",
                # Cohere's rerank pre- and post-processing: /v2/rerank speaks Cohere's v2 shape.
                "pre_process_function": "connector.pre_process.cohere.rerank",
                "post_process_function": "connector.post_process.cohere.rerank",
            }
        ],
    }


def _description(bridge: Bridge, definition: dict[str, Any]) -> str:
    return f"rerank-bridge at {bridge.rerank_url} [definition {fingerprint(definition)}]"


def _ensure_connector(
    http: EngineHttp, bridge: Bridge, plan: OpenSearchPlan, report: Report
) -> tuple[str, list[str]]:
    definition = connector_definition(bridge, plan)
    description = _description(bridge, definition)
    existing = _search(http, "connectors", plan.name)
    current = [c["_id"] for c in existing if c.get("description") == description]
    stale = [c["_id"] for c in existing if c["_id"] not in current]
    if current:
        report.say("unchanged", f"connector {current[0]} ({bridge.rerank_url})")
        return current[0], stale + current[1:]
    created = http.call("POST", f"{ML}/connectors/_create", {**definition, "description": description}).body
    report.say("created", f"connector {created['connector_id']} ({bridge.rerank_url})")
    return str(created["connector_id"]), stale


def _ensure_model_group(http: EngineHttp, plan: OpenSearchPlan, report: Report) -> str:
    groups = _search(http, "model_groups", plan.name)
    if groups:
        report.say("unchanged", f"model group {groups[0]['_id']}")
        return str(groups[0]["_id"])
    body = {"name": plan.name, "description": "rerank-bridge remote rerankers"}
    group = str(http.call("POST", f"{ML}/model_groups/_register", body).body["model_group_id"])
    report.say("created", f"model group {group}")
    return group


def _model_state(http: EngineHttp, model_id: str) -> str:
    # The model index lags behind the state the cluster holds: ask the model itself.
    return str(http.call("GET", f"{ML}/models/{model_id}").body.get("model_state", ""))


def _wait_deployed(http: EngineHttp, model_id: str) -> None:
    """Until the model reads DEPLOYED twice in a row: ml-commons writes its state from
    more than one task (register, deploy, the periodic sync) just after a deploy."""
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    state, settled = "", 0
    while time.monotonic() < deadline:
        state = _model_state(http, model_id)
        settled = settled + 1 if state == "DEPLOYED" else 0
        if settled == 2:
            return
        if state in ("DEPLOY_FAILED", "FAILED"):
            break
        time.sleep(0.3)
    raise WiringError(
        f"model {model_id} is {state or 'unknown'}, not DEPLOYED: see the ml-commons task "
        f"({ML}/tasks/_search) for the reason; on small nodes raise "
        f"{SETTINGS}native_memory_threshold and {SETTINGS}jvm_heap_memory_threshold"
    )


def _deploy(http: EngineHttp, model_id: str) -> bool:
    """Deploys a registered model; False when it was already deployed or deploying
    (by another task, which a write conflict on the model shows)."""
    for _ in range(5):
        if _model_state(http, model_id) in ("DEPLOYED", "DEPLOYING"):
            _wait_deployed(http, model_id)
            return False
        try:
            http.call("POST", f"{ML}/models/{model_id}/_deploy")
        except WiringError as error:
            if "version_conflict" not in str(error):
                raise
            time.sleep(0.5)
            continue
        _wait_deployed(http, model_id)
        return True
    raise WiringError(f"model {model_id}: its state kept changing while it was being deployed")


def _ensure_model(http: EngineHttp, connector_id: str, plan: OpenSearchPlan, report: Report) -> str:
    models = [m for m in _search(http, "models", plan.name) if m.get("connector_id") == connector_id]
    if models:
        model_id = str(models[0]["_id"])
        report.say("deployed" if _deploy(http, model_id) else "unchanged", f"model {model_id} (DEPLOYED)")
        return model_id
    group = _ensure_model_group(http, plan, report)
    body = {
        "name": plan.name,
        "function_name": "remote",
        "model_group_id": group,
        "connector_id": connector_id,
        "description": "rerank-bridge listwise reranker",
    }
    model_id = str(http.call("POST", f"{ML}/models/_register?deploy=true", body).body["model_id"])
    _wait_deployed(http, model_id)
    report.say("created", f"model {model_id} (DEPLOYED)")
    return model_id


def pipeline_definition(plan: OpenSearchPlan, model_id: str) -> dict[str, Any]:
    pipeline: dict[str, Any] = {"description": f"rerank-bridge: {plan.name}"}
    if plan.hybrid == "normalization":
        weights = [plan.keyword_weight, round(1 - plan.keyword_weight, 6)]
        pipeline["phase_results_processors"] = [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {"technique": "arithmetic_mean", "parameters": {"weights": weights}},
                }
            }
        ]
    elif plan.hybrid == "rrf":
        pipeline["phase_results_processors"] = [
            {
                "score-ranker-processor": {
                    "combination": {"technique": "rrf", "rank_constant": plan.rank_constant}
                }
            }
        ]
    if plan.rerank:
        rerank = {
            "ml_opensearch": {"model_id": model_id},
            "context": {"document_fields": list(plan.document_fields)},
            "ignore_failure": plan.ignore_failure,
        }
        pipeline["response_processors"] = [{"rerank": rerank}]
    return pipeline


def _ensure_pipeline(http: EngineHttp, plan: OpenSearchPlan, model_id: str, report: Report) -> None:
    wanted = pipeline_definition(plan, model_id)
    reply = http.call("GET", f"/_search/pipeline/{plan.name}", missing_ok=True)
    if reply.status != 404 and reply.body.get(plan.name) == wanted:
        report.say("unchanged", f"search pipeline {plan.name}")
        return
    http.call("PUT", f"/_search/pipeline/{plan.name}", wanted)
    report.say("created" if reply.status == 404 else "replaced", f"search pipeline {plan.name}")


def _delete_model(http: EngineHttp, model_id: str, report: Report) -> None:
    http.call("POST", f"{ML}/models/{model_id}/_undeploy")
    http.call("DELETE", f"{ML}/models/{model_id}")
    report.say("deleted", f"stale model {model_id}")


def _delete_connector(http: EngineHttp, connector_id: str, deleted_models: set[str], report: Report) -> bool:
    """Deletes the connector; False where ml-commons will not let it go (kept, for the next
    wire to retry). ml-commons refuses (409) while its model index lists a model on it.
    That index lags behind a model's delete, and the model search that found the stale
    models lags behind a model's creation: a model the refusal names that was just deleted
    is waited out, one on this connector not yet deleted is deleted now. The refusal can
    also name models on other connectors: its check is a match query on connector_id, a
    text field, so ids sharing a token ("0ap" of "0pHSUKIBO-0ap-d9MYgm") collide. Those
    are not this wiring's to delete, and while they exist the connector cannot go."""
    deadline = time.monotonic() + RETIRE_TIMEOUT_S
    elsewhere: set[str] = set()  # named models that live on other connectors
    while True:
        try:
            http.call("DELETE", f"{ML}/connectors/{connector_id}")
            return True
        except WiringError as error:
            listed = re.search(r"still using this connector.*?: \[([^\]]*)\]", str(error))
            named = {model.strip() for model in listed.group(1).split(",")} if listed else set()
            if not named or time.monotonic() > deadline:
                raise
            for model_id in sorted(named - deleted_models - elsewhere):
                found = http.call("GET", f"{ML}/models/{model_id}", missing_ok=True)
                if found.status != 404 and found.body.get("connector_id") != connector_id:
                    elsewhere.add(model_id)
                    continue
                if found.status != 404:
                    _delete_model(http, model_id, report)
                deleted_models.add(model_id)
            if named <= elsewhere:
                report.say(
                    "kept",
                    f"stale connector {connector_id}: ml-commons' delete check matches connector ids as "
                    f"text and names models of other connectors ({', '.join(sorted(named))}); "
                    "it has no models left, and the next wire retries",
                )
                return False
            time.sleep(0.5)


def _retire(http: EngineHttp, connector_ids: list[str], plan: OpenSearchPlan, report: Report) -> None:
    """Undeploys and deletes the models on stale connectors, then the connectors."""
    for connector_id in connector_ids:
        deleted = set()
        for model in _search(http, "models", plan.name):
            if model.get("connector_id") == connector_id:
                _delete_model(http, str(model["_id"]), report)
                deleted.add(str(model["_id"]))
        if _delete_connector(http, connector_id, deleted, report):
            report.say("deleted", f"stale connector {connector_id}")


def wire(http: EngineHttp, bridge: Bridge, plan: OpenSearchPlan, apply_settings: bool = False) -> Report:
    report = Report()
    require_plugins(http, plan)
    if plan.rerank:
        missing = missing_settings(http, bridge)
        if missing and not apply_settings:
            raise WiringError(
                "the cluster lacks settings a remote connector to the bridge needs:\n"
                + "\n".join(
                    f"  {s.key}: now {json.dumps(s.now)}, needs {json.dumps(s.needed)} ({s.why})"
                    for s in missing
                )
                + "\nset them (or run again with --apply-settings):\nPUT _cluster/settings\n"
                + json.dumps(settings_fix(missing), indent=2)
            )
        if missing:
            http.call("PUT", "/_cluster/settings", settings_fix(missing))
            report.say("set", ", ".join(s.key for s in missing))
        connector_id, stale = _ensure_connector(http, bridge, plan, report)
        model_id = _ensure_model(http, connector_id, plan, report)
        _ensure_pipeline(http, plan, model_id, report)
        _retire(http, stale, plan, report)
    else:
        _ensure_pipeline(http, plan, "", report)
    return report
