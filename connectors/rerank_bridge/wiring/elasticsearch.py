"""Elasticsearch: a `custom` rerank inference endpoint calling `/v2/rerank`
(Elasticsearch 8.19+ or 9.1+, and a licence that includes the inference API,
or a trial). `text_similarity_reranker` retrievers then name it.

The endpoint's headers carry a fingerprint of the whole definition (the key
included): Elasticsearch never shows `secret_parameters` again, so this is how
a second run tells an unchanged endpoint from one whose key or URL changed."""

from __future__ import annotations

import json
from typing import Any

from rerank_bridge.wiring.endpoints import Bridge, Report
from rerank_bridge.wiring.engine_http import EngineHttp, WiringError, fingerprint

DEFINITION_HEADER = "X-Rerank-Bridge-Definition"


def endpoint_definition(bridge: Bridge) -> dict[str, Any]:
    # Templates stand unquoted: ${query} becomes a JSON string and ${input} an array
    # of strings (Elasticsearch's custom service substitutes them). No ${top_n}: the
    # service defines it only when the caller gave one, and an undefined template
    # fails the request; the bridge then ranks every document, as Cohere does.
    request = {"query": "${query}", "documents": "${input}"}
    if bridge.model:
        request = {"model": bridge.model, **request}
    template = json.dumps(request, ensure_ascii=False)
    for name in ("query", "input"):
        template = template.replace(f'"${{{name}}}"', f"${{{name}}}")
    headers = {"Authorization": "Bearer ${api_key}", "Content-Type": "application/json"}
    settings: dict[str, Any] = {
        "url": bridge.rerank_url,
        "headers": headers,
        "secret_parameters": {"api_key": bridge.api_key or "none"},
        "request": template,
        "response": {
            "json_parser": {
                "relevance_score": "$.results[*].relevance_score",
                "reranked_index": "$.results[*].index",
            }
        },
    }
    definition = {"service": "custom", "service_settings": settings}
    headers[DEFINITION_HEADER] = fingerprint(definition)
    return definition


def _version(http: EngineHttp) -> tuple[int, ...]:
    nodes: dict[str, dict[str, str]] = http.call("GET", "/_nodes/_local?filter_path=nodes.*.version").body[
        "nodes"
    ]
    version = next(iter(nodes.values()))["version"]
    return tuple(int(part) for part in version.split("-")[0].split("."))


def wire(http: EngineHttp, bridge: Bridge, name: str = "rerank-bridge") -> Report:
    report = Report()
    version = _version(http)
    if version < (8, 19) or (9, 0) <= version < (9, 1):
        raise WiringError(
            f"Elasticsearch {'.'.join(map(str, version))} has no `custom` inference service: "
            "it needs 8.19+ or 9.1+"
        )
    wanted = endpoint_definition(bridge)
    path = f"/_inference/rerank/{name}"
    try:
        reply = http.call("GET", path, missing_ok=True)
    except WiringError as error:
        raise WiringError(
            f"this cluster has no inference API ({error}): the `custom` rerank service needs x-pack "
            "with a licence that includes inference (Enterprise, or a 30-day trial: "
            "POST _license/start_trial?acknowledge=true)"
        ) from error
    if reply.status != 404:
        endpoints = reply.body.get("endpoints", [])
        headers = endpoints[0].get("service_settings", {}).get("headers", {}) if endpoints else {}
        if headers.get(DEFINITION_HEADER) == wanted["service_settings"]["headers"][DEFINITION_HEADER]:
            report.say("unchanged", f"inference endpoint {name} ({bridge.rerank_url})")
            return report
        http.call("DELETE", path)
    http.call("PUT", path, wanted)
    report.say(
        "created" if reply.status == 404 else "replaced", f"inference endpoint {name} ({bridge.rerank_url})"
    )
    return report
