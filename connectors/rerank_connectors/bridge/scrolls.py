"""The scroll contexts this bridge opened, so that a caller can continue and
clear them, and nobody can touch any other.

A plain search with `?scroll=` opens a context on the engine that lives for
its keep-alive unless cleared. The bridge lets such a search through only
while it has room to remember the context (`max_open_scrolls`) and with a
keep-alive no longer than `max_scroll_keep_alive`; it records the scroll id
with the API key that opened it, renews it on each continuation, forgets it
when cleared or expired, and clears what is left when it shuts down.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rerank_connectors.bridge.boundary import Refused
from rerank_connectors.errors import RequestError

_DURATION = re.compile(r"(\d{1,9})(d|h|m|s|ms|micros|nanos)")
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "micros": 1e-6, "nanos": 1e-9}


def duration_seconds(value: str, field_name: str) -> float:
    """An Elasticsearch time value (`30s`, `5m`, `1h`, ...) in seconds."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise RequestError(field_name, f"{value[:40]!r} is not a time value such as 30s, 5m or 1h")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def owner_of(api_key: str) -> str:
    """Who opened a scroll, without keeping the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class _Scroll:
    owner: str
    keep_alive: float  # seconds, as asked when it was opened
    expiry: float  # on the registry's clock


@dataclass
class ScrollRegistry:
    capacity: int
    max_keep_alive: float
    clock: Callable[[], float] = time.monotonic
    _open: dict[str, _Scroll] = field(default_factory=dict)

    def keep_alive(self, value: str) -> float:
        seconds = duration_seconds(value, "scroll")
        if not 0 < seconds <= self.max_keep_alive:
            raise RequestError(
                "scroll", f"keep-alive {value} is outside (0, {self.max_keep_alive:g} s], the bridge's limit"
            )
        return seconds

    def _forget_expired(self) -> None:
        now = self.clock()
        for scroll_id in [key for key, scroll in self._open.items() if scroll.expiry <= now]:
            del self._open[scroll_id]

    def make_room(self) -> None:
        """Refuses a new scroll while the bridge already remembers `capacity` live ones."""
        self._forget_expired()
        if len(self._open) >= self.capacity:
            reason = f"the bridge holds {self.capacity} open scrolls, its limit: clear finished ones"
            raise Refused(429, "too_many_scroll_contexts_exception", reason, "scroll")

    def opened(self, scroll_id: str, owner: str, keep_alive: float) -> None:
        self._open[scroll_id] = _Scroll(owner, keep_alive, self.clock() + keep_alive)

    def keep_alive_of(self, scroll_id: str, owner: str) -> float | None:
        """The keep-alive a scroll was opened with, if `owner` opened it and it is live."""
        self._forget_expired()
        scroll = self._open.get(scroll_id)
        return scroll.keep_alive if scroll is not None and scroll.owner == owner else None

    def renewed(self, old_id: str, new_id: str, owner: str, keep_alive: float) -> None:
        """A continuation extends the context (the engine may hand out a new id)."""
        self._open.pop(old_id, None)
        self.opened(new_id, owner, keep_alive)

    def closed(self, scroll_id: str) -> None:
        self._open.pop(scroll_id, None)

    def remaining(self) -> list[str]:
        self._forget_expired()
        return list(self._open)
