"""What the wiring points the engine at, and what it reports having done."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bridge:
    """Where the engine reaches rerank-bridge: its base URL, the key it presents,
    and (optionally) the model name it must ask for."""

    url: str
    api_key: str = ""
    model: str = ""

    @property
    def rerank_url(self) -> str:
        return self.url.rstrip("/") + "/v2/rerank"


@dataclass
class Report:
    """One line per object: what was done to it (created, unchanged, replaced, ...)."""

    lines: list[str] = field(default_factory=list)

    def say(self, action: str, what: str) -> None:
        self.lines.append(f"{action:<9} {what}")
