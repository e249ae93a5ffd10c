"""The bridge's security boundary: what a request may become on the engine.

The request target is decoded exactly once, here, into path segments and
query parameters. The route, the `allow:` rules and every URL sent to the
engine are built from those validated parts, never from the raw target, so
what is checked is what is forwarded.

Refused with 400 before any routing: a target that is not an absolute path;
raw characters outside RFC 3986's path and query sets (a raw `\\` or `#`);
malformed or double percent-encoding; encoded separators and controls (`%2F`,
`%5C`, `%23`, `%3F`, `%00`, ...); bytes that are not UTF-8; empty and dot
segments; repeated or malformed parameters; index expressions that are not
index names. Then a known path with another method gets 405, and anything
that is not a route below gets 403 unless an `allow:` rule names it.
Method-override headers are never read, and only the headers in
FORWARDED_HEADERS ever reach the engine.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from rerank_bridge.search.errors import Refused


def _bad_target(reason: str, field: str = "path") -> Refused:
    return Refused(400, "illegal_argument_exception", reason, field)


# RFC 3986 pchar plus "/" (path) and "?" (query); anything else arrives raw only from a crafted request.
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
_QUERY_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
# Never inside a decoded path segment: separators, controls, and "%" (double encoding).
_NOT_IN_SEGMENT = re.compile(r"[\x00-\x1f\x7f/\\#?%]")
_PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
# Elasticsearch's own http.max_initial_line_length is 4 KiB.
MAX_TARGET_CHARS = 4096


@dataclass(frozen=True)
class Target:
    """A request target, decoded and checked: what every later step reads."""

    segments: tuple[str, ...]
    params: Mapping[str, str]

    @property
    def path(self) -> str:
        return "/" + "/".join(self.segments)


def _decode(raw: str, where: str, plus_is_space: bool = False) -> str:
    if _BAD_ESCAPE.search(raw):
        raise _bad_target(f"{where}: malformed percent-encoding", where)
    try:
        return unquote_to_bytes(raw.replace("+", " ") if plus_is_space else raw).decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_target(f"{where}: percent-encodes bytes that are not UTF-8", where) from None


def _segment(raw: str) -> str:
    if not raw:
        raise _bad_target("empty path segment (// or a trailing /)")
    text = _decode(raw, "path")
    if _NOT_IN_SEGMENT.search(text):
        raise _bad_target("a path segment encodes a separator, a control character or a %")
    if text in (".", ".."):
        raise _bad_target("dot segments (. and ..) are not allowed")
    return text


def _params(query: str) -> dict[str, str]:
    if not _QUERY_CHARS.fullmatch(query):
        raise _bad_target("the query string holds characters that must be percent-encoded", "query")
    params: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = _decode(raw_name, "query")
        if not _PARAM_NAME.fullmatch(name):
            raise _bad_target(f"the query string names {name[:64]!r}, which is not a parameter name", "query")
        if name in params:
            raise _bad_target(f"parameter [{name}] is given twice", name)
        value = _decode(raw_value, name, plus_is_space=True)
        if _CONTROLS.search(value):
            raise _bad_target(f"parameter [{name}] holds a control character", name)
        params[name] = value
    return params


def parse_target(raw: str) -> Target:
    """The one decoding of a request target (aiohttp's `raw_path`: path and query)."""
    if len(raw) > MAX_TARGET_CHARS:
        raise Refused(414, "illegal_argument_exception", "the request target is too long", "path")
    if not raw.startswith("/"):
        raise _bad_target("the request target must be an absolute path")
    path, _, query = raw.partition("?")
    if not _PATH_CHARS.fullmatch(path):
        raise _bad_target("the path holds characters that must be percent-encoded (\\, #, space, ...)")
    segments = () if path == "/" else tuple(_segment(part) for part in path[1:].split("/"))
    return Target(segments, _params(query))


# ASCII only: Python's Unicode \w would let full-width and Cyrillic look-alike names through.
_INDEX_ITEM = re.compile(r"-?([\w*.:][\w*.:-]*)", re.ASCII)


def index_expression(text: str, field: str = "index") -> str:
    """A comma-separated list of index names, aliases, patterns (`logs-*`,
    exclusions `-logs-old`), `remote:index` or `_all`; each name lowercase
    letters, digits and `_ . - * :`, at most 255 bytes, not `.` or `..`, not
    starting with `_` (API names) other than `_all`."""
    for item in text.split(","):
        match = _INDEX_ITEM.fullmatch(item)
        name = match.group(1) if match else ""
        if (
            not match
            or name != name.lower()
            or name in (".", "..")
            or (name.startswith("_") and name != "_all")
            or len(name.encode()) > 255
        ):
            reason = f"{field}: [{item[:255]}] is not an index name, alias, pattern or _all"
            raise Refused(400, "invalid_index_name_exception", reason, field)
    return text


@dataclass(frozen=True)
class Route:
    name: str  # the handler's key and the metrics label
    # The index expression a call names ("" for every index) and the path after it.
    index: str = ""
    rest: tuple[str, ...] = ()

    def segments(self, index: str) -> tuple[str, ...]:
        """The engine path for this route with `index` (a checked or scoped expression)."""
        return ((index,) if index else ()) + self.rest


_FIXED: dict[tuple[str, ...], tuple[str, frozenset[str]]] = {
    (): ("root", frozenset({"GET", "HEAD"})),
    ("_search", "scroll"): ("scroll", frozenset({"GET", "POST", "DELETE"})),
    ("_pit",): ("pit_close", frozenset({"DELETE"})),
    ("_search", "point_in_time"): ("pit_close", frozenset({"DELETE"})),
    ("_search", "point_in_time", "_all"): ("pit_close", frozenset({"DELETE"})),
    ("v1", "rerank"): ("rerank_v1", frozenset({"POST"})),
    ("v2", "rerank"): ("rerank_v2", frozenset({"POST"})),
    ("metrics",): ("metrics", frozenset({"GET"})),
    ("ui",): ("ui", frozenset({"GET"})),
    ("ui", "compare"): ("ui_compare", frozenset({"GET"})),
}
_GET_POST = frozenset({"GET", "POST"})
# The read-only APIs after an optional index: (path after the index, route name, methods).
_INDEXED: tuple[tuple[tuple[str, ...], str, frozenset[str]], ...] = (
    (("_search",), "search", _GET_POST),
    (("_msearch",), "msearch", _GET_POST),
    (("_count",), "read", _GET_POST),
    (("_field_caps",), "read", _GET_POST),
    (("_validate", "query"), "read", _GET_POST),
)
# The same, where the index is required.
_INDEX_REQUIRED: tuple[tuple[tuple[str, ...], str, frozenset[str]], ...] = (
    (("_pit",), "pit_open", frozenset({"POST"})),
    (("_search", "point_in_time"), "pit_open", frozenset({"POST"})),
)


def _known(segments: tuple[str, ...]) -> tuple[Route, frozenset[str]] | None:
    if segments in _FIXED:
        name, methods = _FIXED[segments]
        return Route(name), methods
    if len(segments) == 3 and segments[:2] == ("_search", "scroll"):
        return Route("scroll"), frozenset({"GET", "POST", "DELETE"})
    for rest, name, methods in _INDEXED:
        if segments == rest:
            return Route(name, "", rest), methods
    if not segments:
        return None
    index, rest = segments[0], segments[1:]
    for api, name, methods in _INDEXED + _INDEX_REQUIRED:
        if rest == api:
            return Route(name, index_expression(index), rest), methods
    if len(rest) == 2 and rest[0] == "_explain" and not index.startswith("_"):
        return Route("read", index_expression(index), rest), _GET_POST
    if not rest and not index.startswith("_"):
        # HEAD /{index} (does it exist?); the index's metadata (GET) is not a search API,
        # and a single segment that is no index expression is some other path.
        try:
            return Route("read", index_expression(index), rest), frozenset({"HEAD"})
        except Refused:
            return None
    return None


@dataclass(frozen=True)
class AllowRule:
    """`METHOD /pattern` from the configuration, matched segment by segment on
    the decoded path: `*` matches within one segment, `**` any number of them."""

    method: str
    pattern: tuple[str, ...]

    @classmethod
    def parse(cls, rule: str) -> AllowRule:
        method, _, path = rule.strip().partition(" ")
        path = path.strip()
        segments = tuple(path[1:].split("/")) if path != "/" else ()
        if not re.fullmatch(r"[A-Z]+|\*", method) or not path.startswith("/") or "" in segments:
            raise ValueError(f"allow rule {rule!r} is not 'METHOD /path/pattern'")
        if any(segment in (".", "..") for segment in segments):
            raise ValueError(f"allow rule {rule!r} has a dot segment")
        return cls(method, segments)

    def matches(self, method: str, segments: tuple[str, ...]) -> bool:
        return self.method in (method, "*") and _match(self.pattern, segments)


def _match(pattern: tuple[str, ...], segments: tuple[str, ...]) -> bool:
    if not pattern:
        return not segments
    if pattern[0] == "**":
        return any(_match(pattern[1:], segments[skip:]) for skip in range(len(segments) + 1))
    return (
        bool(segments) and fnmatch.fnmatchcase(segments[0], pattern[0]) and _match(pattern[1:], segments[1:])
    )


FORWARDED = Route("forwarded")


def route_for(method: str, target: Target, allow: tuple[AllowRule, ...]) -> Route:
    """Where a request goes: a bridge route, the engine (an `allow:` rule), or nowhere (raises)."""
    known = _known(target.segments)
    if known is not None and method in known[1]:
        return known[0]
    if any(rule.matches(method, target.segments) for rule in allow):
        return FORWARDED
    # /{index} is known for HEAD only: another method there is another API, not a wrong method.
    index_alone = known is not None and known[0].index != "" and not known[0].rest
    if known is not None and not index_alone:
        allowed = ", ".join(sorted(known[1]))
        reason = f"Incorrect HTTP method for uri [{target.path}] and method [{method}], allowed: [{allowed}]"
        raise Refused(405, "method_not_allowed_exception", reason, "method")
    reason = (
        f"rerank-bridge does not forward {method} {target.path}: it forwards searches only "
        "(allow other calls in its configuration)"
    )
    raise Refused(403, "security_exception", reason, "path")


# Kept literal in upstream URLs; everything else but unreserved characters is percent-encoded.
_UPSTREAM_SAFE = ",*:"


def upstream_url(base: str, segments: tuple[str, ...], params: Mapping[str, str]) -> str:
    """The engine URL for validated parts: each segment and parameter encoded on its own."""
    path = "/".join(quote(segment, safe=_UPSTREAM_SAFE) for segment in segments)
    query = "&".join(f"{name}={quote(value, safe=_UPSTREAM_SAFE)}" for name, value in params.items())
    return f"{base}/{path}" + (f"?{query}" if query else "")


_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,512}")
_MEDIA_RANGES = re.compile(r"[A-Za-z0-9!#$&^_.+*/=;, -]{1,256}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
# The caller's headers the engine may see (the body's Content-Type is rebuilt
# by the body reader). Credentials never pass: the bridge uses its own.
FORWARDED_HEADERS: dict[str, re.Pattern[str]] = {
    "Accept": _MEDIA_RANGES,
    "X-Opaque-Id": _HEADER_VALUE,
    "traceparent": _TRACEPARENT,
    "tracestate": _HEADER_VALUE,
}
# The engine's response headers a caller gets back (besides the body's Content-Type).
RETURNED_HEADERS = ("Warning", "X-Elastic-Product", "X-Opaque-Id")


# OpenSearch 3 refuses a request (400) whose X-Request-Id is not 32 hexadecimal
# characters; Elasticsearch ignores the header.
_ENGINE_REQUEST_ID = re.compile(r"[0-9a-fA-F]{32}")


def engine_request_id(request_id: str) -> dict[str, str]:
    """The request id as a header for the engine, only in the one form every engine
    accepts: a caller's own id of another shape stays in the bridge's and the
    scoring server's logs and is not sent on."""
    return {"X-Request-Id": request_id} if _ENGINE_REQUEST_ID.fullmatch(request_id) else {}


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers to pass on, each checked; a malformed one is refused, naming it."""
    kept = {}
    for name, pattern in FORWARDED_HEADERS.items():
        value = headers.get(name)
        if value is None:
            continue
        if not pattern.fullmatch(value):
            raise Refused(400, "illegal_argument_exception", f"header {name} is malformed", name)
        kept[name] = value
    return kept
