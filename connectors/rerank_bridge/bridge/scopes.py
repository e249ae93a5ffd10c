"""Index scopes of API keys, for engines that have no security of their own.

Deny by default: a scoped key's request reaches only targets the bridge wrote
itself. Every index expression it names (the URL path, each msearch header,
`/ui/compare?index=`), and the implicit one of a call that names none (every
index, as the engines read it), is rebuilt here into a non-empty list of
in-scope names, or refused; the expression as given never reaches the engine.

- A name without a wildcard (an index, alias or data stream) must match a
  pattern of the scope, or the answer is 403, the same whether it exists or
  not; an alias or data stream must also point only inside the scope. A name
  in scope that does not exist is forwarded as it is, for the engine's 404.
- A wildcard (`*`, `_all`, `a-*`) is resolved by the engine (`GET
  /_resolve/index/{item}`, with the bridge's own credentials and the caller's
  `expand_wildcards`) and narrowed, as engine security narrows it, to the
  indices, aliases and data streams in scope; each is forwarded by its own
  name, so an alias keeps its filter. One that keeps nothing is answered 404.
- An exclusion (`-name`, `-pattern`) after a wildcard removes names from those
  gathered before it; it is never forwarded. Before any wildcard, the engines
  read `-name` as a name, which no scope allows (403).
- A remote expression `cluster:index` is never resolved here: it passes only
  where a pattern names a cluster (`cluster:index` patterns), matched part by
  part, and a wildcard in either part only where the pattern's part holds it.

Query features that read documents of another index (a `terms` lookup,
`more_like_this` with `_index`, an indexed shape, `percolate` from an index, a
lookup runtime field) are refused for a scoped key, naming the field.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rerank_bridge.search.errors import Refused

# Resolves an expression (with an expand_wildcards value) to the engine's _resolve/index answer.
Resolver = Callable[[str, str], Awaitable[dict[str, Any]]]


def _outside(name: str, where: str) -> Refused:
    reason = f"this API key may not read [{name[:255]}]: it is outside the key's index scope"
    return Refused(403, "security_exception", reason, where)


def _is_wildcard(item: str) -> bool:
    # `?` is no wildcard to the engines' index resolution: it cannot be in a name at all.
    return "*" in item


def _covers(pattern: str, item: str) -> bool:
    """Whether every name `item` can match (a name, or a wildcard) also matches `pattern`."""
    if not _is_wildcard(item):
        return fnmatch.fnmatchcase(item, pattern)
    if pattern == item or pattern == "*":
        return True
    # A wildcard item is covered only by a prefix pattern it starts with: sound, and enough.
    prefix = pattern[:-1]
    return pattern.endswith("*") and not _is_wildcard(prefix) and item.startswith(prefix)


@dataclass(frozen=True)
class _Found:
    """One name an engine's resolution gave: an index, or an alias or data stream with
    the indices behind it."""

    name: str
    # The indices a search on this name reads (an alias's, a data stream's backing ones).
    members: tuple[str, ...] = ()
    # Whether those indices must be in scope too: an alias's must, a data stream's
    # backing indices are named by the engine (.ds-<stream>-...) and its own name decides.
    scoped_members: bool = False


def _found(resolved: dict[str, Any]) -> list[_Found]:
    found = [_Found(str(entry["name"])) for entry in resolved.get("indices", [])]
    found += [
        _Found(str(alias["name"]), tuple(str(i) for i in alias.get("indices", [])), scoped_members=True)
        for alias in resolved.get("aliases", [])
    ]
    found += [
        _Found(str(stream["name"]), tuple(str(i) for i in stream.get("backing_indices", [])))
        for stream in resolved.get("data_streams", [])
    ]
    return found


def _states(expand_wildcards: str) -> frozenset[str]:
    """The index states (open, closed) a wildcard reaches with this expand_wildcards."""
    asked = set(expand_wildcards.split(","))
    return frozenset({"open", "closed"} if "all" in asked else asked & {"open", "closed"})


@dataclass(frozen=True)
class Scope:
    patterns: tuple[str, ...]

    def allows(self, name: str) -> bool:
        """Whether a local name (an index, alias or data stream) is in scope."""
        return any(":" not in pattern and fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)

    def covers(self, item: str) -> bool:
        """Whether a pattern of the scope covers every local name `item` can match."""
        return any(_covers(pattern, item) for pattern in self.patterns)

    def _outside_of(self, found: _Found) -> str | None:
        """The first name of `found` (itself, or an index behind an alias) outside the scope."""
        names = (found.name, *found.members) if found.scoped_members else (found.name,)
        return next((name for name in names if not self.allows(name)), None)

    def allows_remote(self, item: str) -> bool:
        """Whether `cluster:index` is in scope: a pattern that names a cluster covers both parts."""
        cluster, _, index = item.partition(":")
        for pattern in self.patterns:
            pattern_cluster, colon, pattern_index = pattern.partition(":")
            if colon and _covers(pattern_cluster, cluster) and _covers(pattern_index, index):
                return True
        return False

    async def targets(
        self, expression: str, expand_wildcards: str, resolve: Resolver, where: str, narrow: bool = True
    ) -> str:
        """The in-scope names to forward in place of `expression` ("" is every index):
        never empty and never a wildcard the engine would expand; else 403 or 404.
        With `narrow` false (an existence check, which engine security does not
        narrow), a wildcard no pattern covers, or one reaching outside the scope, is refused."""
        targets: list[_Found] = []
        expanded = False  # whether a wildcard came before: only then is `-name` an exclusion
        for item in [item for item in expression.split(",") if item] or ["*"]:
            if item.startswith("-"):
                if not expanded:
                    raise _outside(item, where)  # to the engines, a name no index can have
                # An exclusion removes the indices it names, also from behind an alias.
                excluded = item[1:]
                if not narrow and not self.covers(excluded):
                    raise _outside(excluded, where)  # as engine security checks every name given
                targets = [
                    each
                    for each in targets
                    if not any(fnmatch.fnmatchcase(name, excluded) for name in (each.name, *each.members))
                ]
                continue
            text = "*" if item == "_all" else item
            if ":" in text:
                if not self.allows_remote(text):
                    raise _outside(text, where)
                kept = [_Found(text)]
            elif _is_wildcard(text):
                kept = await self._wildcard(text, expand_wildcards, resolve, where, narrow)
                expanded = True
            else:
                kept = [await self._name(text, expand_wildcards, resolve, where)]
            named = {each.name for each in targets}
            targets += [each for each in kept if each.name not in named]
        if not targets:
            # Never forwarded empty: to the engine, no index is every index.
            reason = f"no index in this API key's scope matches [{expression[:255]}]"
            raise Refused(404, "index_not_found_exception", reason, where)
        return ",".join(each.name for each in targets)

    async def _name(self, name: str, expand_wildcards: str, resolve: Resolver, where: str) -> _Found:
        """A name without a wildcard: in scope, and (an alias) pointing only inside it."""
        # Checked before the engine is asked, so that an out-of-scope name is refused
        # alike whether it exists or not.
        if not self.allows(name):
            raise _outside(name, where)
        found = _found(await resolve(name, expand_wildcards))
        for each in found:
            if (outside := self._outside_of(each)) is not None:
                raise _outside(outside, where)
        # A name no index has yet is forwarded as it is, for the engine's own 404.
        return next((each for each in found if each.name == name), _Found(name))

    async def _wildcard(
        self, pattern: str, expand_wildcards: str, resolve: Resolver, where: str, narrow: bool
    ) -> list[_Found]:
        """The in-scope names a wildcard reaches, each forwarded by its own name."""
        states = _states(expand_wildcards)
        if not states:
            # expand_wildcards=none (or hidden alone): the engine expands no wildcard and
            # reads this one as a name no index has.
            raise Refused(404, "index_not_found_exception", f"no such index [{pattern[:255]}]", where)
        if not narrow and not self.covers(pattern):
            # Not narrowed, engine security judges the wildcard itself, over every index.
            raise _outside(pattern, where)
        found = _found(await resolve(pattern, expand_wildcards))
        outside = [each for each in found if self._outside_of(each) is not None]
        if outside and not narrow:
            raise _outside(outside[0].name, where)
        kept = [each for each in found if each not in outside]
        grouped = [each for each in kept if each.members]
        if grouped and states != {"open", "closed"}:
            # The engine's resolution lists an alias or data stream whatever the state of
            # its indices; a search reaches it through a wildcard only where one of them
            # is in a state the wildcard expands to (named, it would reach them all).
            members = sorted({index for each in grouped for index in each.members})
            resolved = await resolve(",".join(members), "all")
            closed = {
                str(entry["name"])
                for entry in resolved.get("indices", [])
                if "closed" in entry.get("attributes", [])
            }
            kept = [
                each
                for each in kept
                if not each.members
                or any(("closed" if index in closed else "open") in states for index in each.members)
            ]
        return kept


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
