"""Elasticsearch's `filter_path` response filtering, for the answers the bridge
builds itself (a reranked search cannot hand the parameter to the engine: it
needs the hits' text and scores that the filter would drop).

`filter_path=hits.hits._id,hits.hits._score,-hits.hits._source`: comma-separated
dotted paths; `*` matches within a name, `**` any number of levels, a leading
`-` excludes. Arrays are looked through. Exclusions apply first, then
inclusions; what no inclusion reaches is left out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

Pattern = tuple[str, ...]
_NOTHING = object()


def _alternatives(patterns: list[Pattern]) -> Iterator[Pattern]:
    """Each pattern, plus what a leading `**` becomes when it matches no level."""
    for pattern in patterns:
        yield pattern
        while pattern[0] == "**" and len(pattern) > 1:
            pattern = pattern[1:]
            yield pattern


def _step(key: str, patterns: list[Pattern]) -> tuple[bool, list[Pattern]]:
    """Whether `key` completes a pattern, and the patterns left for its value."""
    complete, rest = False, []
    for pattern in _alternatives(patterns):
        head = pattern[0]
        if head == "**":
            complete = complete or len(pattern) == 1
            rest.append(pattern)
        elif fnmatch.fnmatchcase(key, head):
            if len(pattern) == 1:
                complete = True
            else:
                rest.append(pattern[1:])
    return complete, rest


def _include(node: Any, patterns: list[Pattern]) -> Any:
    if isinstance(node, list):
        kept = [item for item in (_include(element, patterns) for element in node) if item is not _NOTHING]
        return kept or _NOTHING
    if not isinstance(node, dict):
        return _NOTHING
    out = {}
    for key, value in node.items():
        complete, rest = _step(key, patterns)
        if complete:
            out[key] = value
        elif rest and (kept := _include(value, rest)) is not _NOTHING:
            out[key] = kept
    return out or _NOTHING


def _exclude(node: Any, patterns: list[Pattern]) -> Any:
    if isinstance(node, list):
        return [_exclude(element, patterns) for element in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        complete, rest = _step(key, patterns)
        if not complete:
            out[key] = _exclude(value, rest) if rest else value
    return out


def filter_path(document: dict[str, Any], expression: str) -> dict[str, Any]:
    paths = [path.strip() for path in expression.split(",") if path.strip()]
    includes = [tuple(path.split(".")) for path in paths if not path.startswith("-")]
    excludes = [tuple(path[1:].split(".")) for path in paths if path.startswith("-") and len(path) > 1]
    filtered: Any = _exclude(document, excludes) if excludes else document
    if includes:
        filtered = _include(filtered, includes)
    return filtered if isinstance(filtered, dict) else {}
