"""The format of answers the bridge reads or builds.

An answer the bridge only relays keeps whatever format the caller asked the
engine for. An answer the bridge must read (a reranked search, a reranked
msearch item, a search that opens a scroll or point in time, a scroll
continuation) is asked of the engine in JSON and given to the caller in the
format it asked for: JSON, or YAML (converted here). CBOR and Smile are
binary formats the bridge does not write: asked for on such a call, they are
refused (406) before the engine is called, so no context is ever opened that
the bridge could not read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from rerank_bridge.bridge.upstream import Reply
from rerank_bridge.search.errors import Refused

_READABLE = ("json", "yaml")


@dataclass(frozen=True)
class AnswerFormat:
    name: str  # "json" or "yaml"

    def render(
        self, body: Any, status: int = 200, pretty: bool = False, headers: Sequence[tuple[str, str]] = ()
    ) -> web.Response:
        if self.name == "yaml":
            text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, explicit_start=True)
            response = web.Response(status=status, text=text, content_type="application/yaml")
        else:
            text = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None)
            response = web.Response(status=status, text=text, content_type="application/json")
        for name, value in headers:
            response.headers.add(name, value)
        return response


JSON = AnswerFormat("json")


def accepted_format(accept: str) -> str | None:
    """The format an Accept header asks for first ("json" for none or any); None where
    it is one the bridge does not write."""
    for media_range in accept.split(","):
        essence = media_range.split(";")[0].strip().lower()
        if essence in ("*/*", "application/*", "") or essence.endswith("json"):
            return "json"
        if essence in ("application/yaml", "application/x-yaml", "text/yaml"):
            return "yaml"
    return None


def answer_format(params: Mapping[str, str], accept: str | None) -> AnswerFormat:
    """What a caller asked for: the `format` parameter wins over Accept, as in the engines."""
    if "format" in params:
        name = params["format"].lower()
        if name not in _READABLE:
            reason = f"format [{params['format'][:40]}]: the bridge answers this call in json or yaml only"
            raise Refused(406, "media_type_header_exception", reason, "format")
        return AnswerFormat(name)
    if not accept:
        return JSON
    accepted = accepted_format(accept)
    if accepted is None:
        reason = f"Accept header [{accept[:100]}]: the bridge answers this call in JSON or YAML only"
        raise Refused(406, "media_type_header_exception", reason, "Accept")
    return AnswerFormat(accepted)


def answer(
    body: Any, status: int = 200, pretty: bool = False, headers: Sequence[tuple[str, str]] = ()
) -> web.Response:
    """JSON the bridge built, with the engine's returned headers where it called the engine."""
    return JSON.render(body, status, pretty, headers)


def from_engine(reply: Reply) -> web.Response:
    """The engine's answer as it came: status, body bytes, content type and returned headers."""
    response = web.Response(status=reply.status, body=reply.body)
    response.headers["Content-Type"] = reply.content_type
    for name, value in reply.headers:
        response.headers.add(name, value)
    return response


def relay(reply: Reply, wanted: AnswerFormat) -> web.Response:
    """An engine reply the bridge read in JSON, given back in the caller's format:
    the engine's bytes for JSON, converted for YAML."""
    if wanted.name == "json":
        return from_engine(reply)
    return wanted.render(reply.document(), reply.status, headers=reply.headers)
