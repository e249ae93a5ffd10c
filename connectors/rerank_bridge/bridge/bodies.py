"""Reading request bodies the way the bridge forwards them: strictly.

A body is UTF-8 JSON (or NDJSON for `_msearch`) of a supported media type,
within the size limit (counted after decompression), nested no deeper than
the depth limit, with no duplicate keys, no NaN or Infinity and no lone
UTF-16 surrogates. What the engine receives is re-serialised from the parsed
value, so it cannot read the body differently than the bridge did.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from rerank_bridge.search.errors import Refused, RequestError, RerankBridgeError

_MEDIA_TYPE = re.compile(
    r"application/(vnd\.elasticsearch\+)?(json|x-ndjson)((?:\s*;\s*[A-Za-z-]+=[A-Za-z0-9.\"-]+)*)\s*",
    re.IGNORECASE,
)
_MEDIA_PARAMETER = re.compile(r";\s*([A-Za-z-]+)=\"?([A-Za-z0-9.-]+)\"?")
# The body encodings aiohttp decodes, and how the rebuilt body is encoded again for the engine.
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda body: gzip.compress(body, compresslevel=1),
    "deflate": lambda body: zlib.compress(body, 1),
}


@dataclass(frozen=True)
class MediaType:
    """JSON or NDJSON, plain or Elasticsearch's vendor type with its compatibility version."""

    ndjson: bool = False
    compatible_with: str | None = None

    def header(self, ndjson: bool | None = None) -> str:
        subtype = "x-ndjson" if (self.ndjson if ndjson is None else ndjson) else "json"
        if self.compatible_with is None:
            return f"application/{subtype}"
        return f"application/vnd.elasticsearch+{subtype}; compatible-with={self.compatible_with}"


def _unsupported(value: str) -> Refused:
    return Refused(
        406,
        "media_type_header_exception",
        f"Content-Type header [{value[:100]}] is not supported",
        "Content-Type",
    )


def media_type(value: str | None, ndjson_allowed: bool = False) -> MediaType:
    """The media type of a body that is there: like both engines, a body
    without a Content-Type is refused (406), never guessed."""
    if not value:
        raise Refused(406, "media_type_header_exception", "Content-Type header is missing", "Content-Type")
    match = _MEDIA_TYPE.fullmatch(value)
    if match is None or (match.group(2).lower() == "x-ndjson" and not ndjson_allowed):
        raise _unsupported(value)
    vendor, compatible_with = bool(match.group(1)), None
    for name, setting in _MEDIA_PARAMETER.findall(match.group(3)):
        if name.lower() == "charset" and setting.lower() in ("utf-8", "utf8"):
            continue
        if name.lower() == "compatible-with" and vendor and setting.isdigit():
            compatible_with = setting
            continue
        raise _unsupported(value)
    if vendor and compatible_with is None:
        raise _unsupported(value)
    return MediaType(match.group(2).lower() == "x-ndjson", compatible_with)


def content_encoding(request: web.Request) -> str | None:
    """The body's encoding (a COMPRESSORS key), None for none or identity; 415 for any other."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "identity":
        return None
    if encoding not in COMPRESSORS:
        reason = f"Content-Encoding [{encoding[:40]}] is not supported; use gzip or deflate"
        raise Refused(415, "illegal_argument_exception", reason, "Content-Encoding")
    return encoding


class Abandoned(RerankBridgeError):
    """The caller went away before its body arrived: nobody is left to answer,
    so it is counted (as 499, nginx's "client closed request") and logged, not
    treated as the bridge's failure."""

    status = 499
    kind = "client_closed_request"


async def read_bytes(request: web.Request, max_bytes: int, timeout: float) -> bytes | None:
    """The decompressed body, or None when there is none. `max_bytes` is the
    application's `client_max_size`, which aiohttp checks while it decompresses;
    the whole body must arrive within `timeout` seconds, so that connections
    trickling a body cannot hold the bridge (408, and the connection closes)."""
    encoding = content_encoding(request)
    if not request.body_exists:
        return None
    too_large = Refused(
        413,
        "content_too_long_exception",
        f"the body is larger than the bridge's limit of {max_bytes} bytes",
        "body",
    )
    if (request.content_length or 0) > max_bytes:
        raise too_large
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError:
        reason = f"the body did not arrive within the bridge's limit of {timeout:g} s"
        raise Refused(408, "request_timeout_exception", reason, "body") from None
    except ConnectionResetError:
        raise Abandoned("the caller closed the connection before its body arrived") from None
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except RequestPayloadError:
        raise Refused(400, "parse_exception", f"body: cannot be decoded as {encoding}", "body") from None
    return raw or None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for key, value in pairs:
        if key in built:
            raise _DuplicateKey(key)
        built[key] = value
    return built


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _check_tree(value: Any, where: str, max_depth: int) -> None:
    """Depth and text checks over the parsed value, without recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise RequestError(where, f"nests deeper than the bridge's limit of {max_depth} levels")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise RequestError(where, "holds a lone UTF-16 surrogate, which is not text")
                stack.append((child, depth + 1))
        elif isinstance(node, str) and _SURROGATE.search(node):
            raise RequestError(where, "holds a lone UTF-16 surrogate, which is not text")


def loads(raw: bytes, where: str, max_depth: int) -> Any:
    """One JSON document, strictly; RequestError naming `where` otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(where, f"is not valid UTF-8 (byte {error.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_finite)
    except _DuplicateKey as error:
        raise RequestError(where, f"duplicate key {error.key[:100]!r}") from None
    except json.JSONDecodeError as error:
        raise RequestError(
            where, f"is not JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise RequestError(where, f"nests deeper than the bridge's limit of {max_depth} levels") from None
    except ValueError as error:  # NaN, Infinity, huge numbers
        raise RequestError(where, str(error)[:200]) from None
    _check_tree(value, where, max_depth)
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def json_object(raw: bytes | None, where: str, max_depth: int) -> dict[str, Any] | None:
    """A body that must be one JSON object (None when there is no body)."""
    if raw is None or not raw.strip():
        return None
    value = loads(raw, where, max_depth)
    if not isinstance(value, dict):
        raise RequestError(where, f"must be a JSON object, got {type(value).__name__}")
    return value


def ndjson_lines(raw: bytes | None, max_depth: int) -> list[Any]:
    """Each non-empty line of an NDJSON body, parsed; errors name the line (from 1)."""
    if raw is None:
        return []
    lines = raw.split(b"\n")
    return [
        loads(line, f"line {number}", max_depth) for number, line in enumerate(lines, start=1) if line.strip()
    ]
