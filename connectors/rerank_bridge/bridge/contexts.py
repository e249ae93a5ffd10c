"""The search contexts this bridge opened (scrolls and points in time), so that
a caller can use and close its own, and nobody can touch any other's.

A search with `?scroll=` or an open point in time starts a context on the
engine that lives for its keep-alive unless closed. The bridge opens one only
while it has room to remember it (the registry's capacity, counted with the
openings still in flight, so concurrent openings cannot overshoot it) and with
a keep-alive no longer than its limit. It records each id with the caller that
opened it, renews it on each use, forgets it when closed or expired, and
closes what is left when it shuts down.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rerank_bridge.search.errors import Refused, RequestError

_DURATION = re.compile(r"(\d{1,9})(d|h|m|s|ms|micros|nanos)")
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "micros": 1e-6, "nanos": 1e-9}


def duration_seconds(value: str, field_name: str) -> float:
    """An Elasticsearch time value (`30s`, `5m`, `1h`, ...) in seconds."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise RequestError(field_name, f"{value[:40]!r} is not a time value such as 30s, 5m or 1h")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def owner_of(credential: str) -> str:
    """Who opened a context (a hash of the caller's key or credentials, never kept itself)."""
    return hashlib.sha256(credential.encode()).hexdigest()


@dataclass(frozen=True)
class _Context:
    owner: str
    keep_alive: float  # seconds, as asked when it was opened
    expiry: float  # on the registry's clock


@dataclass
class ContextRegistry:
    kind: str  # "scroll" or "point in time", for messages
    field_name: str  # the request field that carries the keep-alive
    capacity: int
    max_keep_alive: float
    # How many of them one caller may hold, so that one caller cannot take them all.
    per_owner: int | None = None
    clock: Callable[[], float] = time.monotonic
    _open: dict[str, _Context] = field(default_factory=dict)
    _opening: Counter[str] = field(default_factory=Counter)

    def keep_alive(self, value: str) -> float:
        seconds = duration_seconds(value, self.field_name)
        if not 0 < seconds <= self.max_keep_alive:
            raise RequestError(
                self.field_name,
                f"keep-alive {value} is outside (0, {self.max_keep_alive:g} s], the bridge's limit",
            )
        return seconds

    def _forget_expired(self) -> None:
        now = self.clock()
        for context_id in [key for key, context in self._open.items() if context.expiry <= now]:
            del self._open[context_id]

    @contextmanager
    def room(self, owner: str) -> Iterator[None]:
        """Holds a place for one context of `owner` while it is being opened. The
        check and the hold happen with no await between them, so on the event loop
        they are one step: with a limit reached, the next opening gets 429."""
        self._forget_expired()
        if len(self._open) + self._opening.total() >= self.capacity:
            reason = (
                f"the bridge holds {self.capacity} open {self.kind} contexts, its limit: close finished ones"
            )
            raise Refused(429, "too_many_search_contexts_exception", reason, self.field_name)
        held = sum(context.owner == owner for context in self._open.values()) + self._opening[owner]
        if self.per_owner is not None and held >= self.per_owner:
            reason = f"this caller holds {self.per_owner} open {self.kind} contexts, its own limit"
            raise Refused(429, "too_many_search_contexts_exception", reason, self.field_name)
        self._opening[owner] += 1
        try:
            yield
        finally:
            self._opening[owner] -= 1

    def opened(self, context_id: str, owner: str, keep_alive: float) -> None:
        self._open[context_id] = _Context(owner, keep_alive, self.clock() + keep_alive)

    def keep_alive_of(self, context_id: str, owner: str) -> float | None:
        """The keep-alive a context was opened with, if `owner` opened it and it is live."""
        self._forget_expired()
        context = self._open.get(context_id)
        return context.keep_alive if context is not None and context.owner == owner else None

    def renewed(self, old_id: str, new_id: str, owner: str, keep_alive: float) -> None:
        """A use extends the context (the engine may hand out a new id)."""
        self._open.pop(old_id, None)
        self.opened(new_id, owner, keep_alive)

    def closed(self, context_id: str) -> None:
        self._open.pop(context_id, None)

    def owned_by(self, owner: str) -> list[str]:
        self._forget_expired()
        return [context_id for context_id, context in self._open.items() if context.owner == owner]

    def remaining(self) -> list[str]:
        self._forget_expired()
        return list(self._open)
