"""Index scopes of API keys, for engines that have no security of their own.

A scoped key reads only the concrete indices its patterns match. What an index
expression reaches is the engine's to say (wildcards, exclusions, `_all`,
aliases, data streams, hidden indices with `expand_wildcards`), so the bridge
asks it (`GET /_resolve/index/{expression}`, with its own credentials) and
checks every concrete index in the answer; one outside the scope refuses the
whole request (403, naming it). A checked wildcard expression is forwarded as
the concrete indices it resolved to, so an index created a moment later is not
reached through it; one that matches nothing is answered 404 here, never
forwarded as it is. An index on a remote cluster (`cluster:index`) is never
resolved here: it passes only where a pattern names it, cluster included.

Query features that read documents of another index (a `terms` lookup,
`more_like_this` with `_index`, an indexed shape, `percolate` from an index, a
lookup runtime field) are refused for a scoped key, naming the field.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rerank_bridge.bridge.boundary import Refused

# Resolves an expression (with an expand_wildcards value) to the engine's _resolve/index answer.
Resolver = Callable[[str, str], Awaitable[dict[str, Any]]]


def _outside(name: str, where: str) -> Refused:
    reason = f"this API key may not read [{name[:255]}]: it is outside the key's index scope"
    return Refused(403, "security_exception", reason, where)


def _concrete(resolved: dict[str, Any]) -> set[str]:
    names = {str(entry["name"]) for entry in resolved.get("indices", [])}
    for alias in resolved.get("aliases", []):
        names.update(str(name) for name in alias.get("indices", []))
    for stream in resolved.get("data_streams", []):
        names.update(str(name) for name in stream.get("backing_indices", []))
    return names


@dataclass(frozen=True)
class Scope:
    patterns: tuple[str, ...]

    def allows(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)

    async def expression(self, expression: str, expand_wildcards: str, resolve: Resolver, where: str) -> str:
        """The expression to forward in place of `expression` ("" is every index), or 403."""
        items = [item for item in expression.split(",") if item] or ["*"]
        remote = [item for item in items if ":" in item]
        for item in remote:
            if item.startswith("-") or not self.allows(item):
                raise _outside(item, where)
        # `_all` is `*` to the engines' resolution; asked literally, one of them resolves it to nothing.
        local = ["*" if item == "_all" else item for item in items if ":" not in item]
        if not local:
            return ",".join(remote)
        concrete = _concrete(await resolve(",".join(local), expand_wildcards))
        for name in sorted(concrete):
            if not self.allows(name):
                raise _outside(name, where)
        if not concrete:
            # Never forwarded as it is: a wildcard that matches nothing now may match
            # an index outside the scope by the time the engine reads it.
            reason = f"no index in this API key's scope matches [{expression[:255]}]"
            raise Refused(404, "index_not_found_exception", reason, where)
        if any("*" in item or "?" in item for item in local):
            local = sorted(concrete)
        return ",".join(local + remote)


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of the objects inside `node`."""
    stack = [(node, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                inner = f"{where}.{key}" if where else str(key)
                yield inner, str(key), value
                stack.append((value, inner))
        elif isinstance(current, list):
            stack.extend((value, f"{where}[{i}]") for i, value in enumerate(current))


def _reads_another_index(key: str, value: Any) -> bool:
    if key == "terms" and isinstance(value, dict):
        return any(isinstance(lookup, dict) and "index" in lookup for lookup in value.values())
    if key in ("more_like_this", "mlt") and isinstance(value, dict):
        likes = [*_as_list(value.get("like")), *_as_list(value.get("unlike"))]
        return any(isinstance(like, dict) and "_index" in like for like in likes)
    if key == "indexed_shape":
        return True
    if key == "percolate" and isinstance(value, dict):
        return "index" in value
    if key == "runtime_mappings" and isinstance(value, dict):
        return any(isinstance(field, dict) and field.get("type") == "lookup" for field in value.values())
    return False


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


def refuse_reads_of_other_indices(body: Any, where: str = "body") -> None:
    """403 naming the first field of `body` that would read another index's documents."""
    for path, key, value in _walk(body, ""):
        if _reads_another_index(key, value):
            field = f"{where}.{path}" if where else path
            reason = f"{field} reads documents of another index, which a key with an index scope may not do"
            raise Refused(403, "security_exception", reason, field)
