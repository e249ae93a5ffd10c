"""The bridge's settings, from a YAML or JSON file (and secrets from the environment).

engine:
  url: http://127.0.0.1:9200
  kind: auto                  # or elasticsearch / opensearch
  timeout: 30                 # seconds for each engine call (past it: 504)
  username_env: ENGINE_USER   # names of environment variables, never the secrets
  password_env: ENGINE_PASSWORD
  api_key_env: ENGINE_API_KEY
  credentials: bridge         # or caller: each caller's own Authorization goes to the engine
reranker: {address: 127.0.0.1:50051, timeout: 30}   # or a list: [rerank-1:50051, rerank-2:50051]
listen: {host: 127.0.0.1, port: 8080, tls_cert: "", tls_key: ""}
api_keys_env: RERANK_BRIDGE_API_KEYS   # comma-separated; unset or empty: no key needed
scoped_keys:                            # keys that may read only some indices: the variable
  TEAM_A_KEY: ["docs-*", "shared"]      # holding the key, and index patterns (fnmatch)
indices:                                # reranking per index pattern (fnmatch)
  "docs*": {fields: [title, text], rank_window_size: 50, blend: {weight: 0.8, normalizer: zscore}}
allow: ["GET /_cluster/health"]         # extra pass-through calls (METHOD /pattern; * and **)
limits:                                 # defaults shown
  max_body_bytes: 10485760
  max_json_depth: 100
  max_msearch_searches: 100
  max_open_scrolls: 1000
  max_scroll_keep_alive: 30m
  max_open_points_in_time: 1000
  max_point_in_time_keep_alive: 30m
  max_open_contexts_per_caller: null    # of each kind, per API key or credential (null: no share)
  body_timeout: 30                      # seconds for a request body to arrive (past it: 408)
  max_connections: 1000                 # more are answered 503 and closed

The file is read strictly: an unknown key or a value of the wrong type is an
error naming it.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from rerank_bridge.bridge.boundary import AllowRule
from rerank_bridge.bridge.contexts import duration_seconds
from rerank_bridge.search.errors import RequestError
from rerank_bridge.search.settings import RerankSettings
from rerank_bridge.search.strict_json import StrictForm, validated

# The file's forms are where every setting and its default is declared; the runtime
# view below (Limits, BridgeConfig) is built from them.
DEFAULT_RERANKER = "127.0.0.1:50051"  # the form's address, and the runtime's
Seconds = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Target = Annotated[str, Field(min_length=1)]


class EngineForm(StrictForm):
    url: str = "http://127.0.0.1:9200"
    kind: Literal["auto", "elasticsearch", "opensearch"] = "auto"
    timeout: Seconds = 30.0
    username_env: str = ""
    password_env: str = ""
    api_key_env: str = ""
    credentials: Literal["bridge", "caller"] = "bridge"


class RerankerForm(StrictForm):
    address: Target | Annotated[list[Target], Field(min_length=1)] = DEFAULT_RERANKER
    timeout: Seconds = 30.0


class ListenForm(StrictForm):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    tls_cert: str = ""
    tls_key: str = ""


class LimitsForm(StrictForm):
    max_body_bytes: Count = 10 * 1024 * 1024
    max_json_depth: Count = 100
    max_msearch_searches: Count = 100
    max_open_scrolls: Count = 1000
    max_scroll_keep_alive: str = "30m"  # a time value; the runtime view holds seconds
    max_open_points_in_time: Count = 1000
    max_point_in_time_keep_alive: str = "30m"
    # Of each kind, per API key or credential (None: no share).
    max_open_contexts_per_caller: Count | None = None
    body_timeout: Seconds = 30.0
    max_connections: Count = 1000


class FileForm(StrictForm):
    engine: EngineForm = EngineForm()
    reranker: RerankerForm = RerankerForm()
    listen: ListenForm = ListenForm()
    api_keys_env: str = "RERANK_BRIDGE_API_KEYS"
    scoped_keys: dict[str, Annotated[list[Target], Field(min_length=1)]] = Field(default_factory=dict)
    indices: dict[str, dict[str, Any]] = Field(default_factory=dict)
    allow: list[str] = Field(default_factory=list)
    limits: LimitsForm = LimitsForm()


# The limits that are time values in the file, held in seconds at run time.
DURATIONS = ("max_scroll_keep_alive", "max_point_in_time_keep_alive")


@dataclass(frozen=True)
class Limits:
    """LimitsForm at run time: its time values in seconds."""

    max_body_bytes: int
    max_json_depth: int
    max_msearch_searches: int
    max_open_scrolls: int
    max_scroll_keep_alive: float
    max_open_points_in_time: int
    max_point_in_time_keep_alive: float
    max_open_contexts_per_caller: int | None
    body_timeout: float
    max_connections: int

    @classmethod
    def of(cls, form: LimitsForm) -> Limits:
        values = form.model_dump()
        for name in DURATIONS:
            values[name] = duration_seconds(values[name], f"limits.{name}")
        return cls(**values)

    def replace(self, **changes: Any) -> Limits:
        return dataclasses.replace(self, **changes)


DEFAULT_LIMITS = Limits.of(LimitsForm())
# Every other default, as the forms declare them.
_DEFAULT = FileForm()


def _engine_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"engine url {url!r} must be http(s)://host[:port][/path]")
    if parts.username or parts.password:
        raise ValueError("engine url must not carry credentials: name environment variables instead")
    return url.rstrip("/")


@dataclass(frozen=True)
class BridgeConfig:
    engine_url: str
    engine_kind: str = _DEFAULT.engine.kind
    engine_timeout: float = _DEFAULT.engine.timeout
    engine_username: str = field(default="", repr=False)
    engine_password: str = field(default="", repr=False)
    engine_api_key: str = field(default="", repr=False)
    # "bridge": the bridge's own credentials reach the engine for every caller
    # (scoped keys limit what each caller reads); "caller": each caller's own
    # Authorization goes to the engine, whose security decides.
    engine_credentials: str = _DEFAULT.engine.credentials
    # One gRPC target or several, called in turn with failover (client.RerankClient).
    reranker: str | tuple[str, ...] = DEFAULT_RERANKER
    reranker_timeout: float = _DEFAULT.reranker.timeout
    host: str = _DEFAULT.listen.host
    port: int = _DEFAULT.listen.port
    tls_cert: str = _DEFAULT.listen.tls_cert
    tls_key: str = _DEFAULT.listen.tls_key
    api_keys: frozenset[str] = field(default=frozenset(), repr=False)
    # Keys that may read only the indices matching their patterns.
    scoped_keys: tuple[tuple[str, tuple[str, ...]], ...] = field(default=(), repr=False)
    indices: tuple[tuple[str, RerankSettings], ...] = ()
    allow: tuple[str, ...] = ()
    limits: Limits = DEFAULT_LIMITS
    allow_rules: tuple[AllowRule, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine_url", _engine_url(self.engine_url))
        object.__setattr__(self, "allow_rules", tuple(AllowRule.parse(rule) for rule in self.allow))
        if self.engine_credentials not in ("bridge", "caller"):
            raise ValueError(f"engine credentials {self.engine_credentials!r} must be bridge or caller")
        if self.engine_credentials == "caller" and self.known_keys:
            raise ValueError(
                "with engine credentials from the caller, the engine checks them: "
                "the bridge takes no API keys of its own"
            )

    @property
    def known_keys(self) -> frozenset[str]:
        return self.api_keys | {key for key, _ in self.scoped_keys}

    def scope_of(self, key: str) -> tuple[str, ...] | None:
        """The index patterns a key may read; None for a key that may read every index."""
        return next((patterns for scoped, patterns in self.scoped_keys if scoped == key), None)

    def rerank_for(self, index: str) -> RerankSettings | None:
        """The configured settings of the first pattern that matches every index named."""
        names = [name.strip() for name in index.split(",")]
        for pattern, settings in self.indices:
            if all(fnmatch.fnmatchcase(name, pattern) for name in names):
                return settings
        return None

    def replace(self, **changes: Any) -> BridgeConfig:
        return dataclasses.replace(self, **changes)


def _read(path: Path) -> Any:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _scoped_key(env: Mapping[str, str], variable: str, where: str) -> str:
    key = env.get(variable, "").strip()
    if not key:
        raise RequestError(
            f"{where}: scoped_keys.{variable}", "names an environment variable that is unset or empty"
        )
    return key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`rerank-bridge proxy`'s flags: the file, and overrides of what it says."""
    parser.add_argument("--config", type=Path, help="bridge configuration (YAML or JSON)")
    parser.add_argument("--engine-url", help="engine URL (overrides the file)")
    parser.add_argument(
        "--reranker",
        action="append",
        help="scoring server address host:port; repeat it for several (overrides the file)",
    )
    parser.add_argument("--host", help="address to listen on (overrides the file)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides the file)")


def from_namespace(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> BridgeConfig:
    return load_config(
        args.config,
        environ,
        engine_url=args.engine_url,
        reranker=tuple(args.reranker) if args.reranker else None,
        host=args.host,
        port=args.port,
    )


def load_config(
    path: Path | None, environ: Mapping[str, str] | None = None, **overrides: Any
) -> BridgeConfig:
    """Reads the file (if any), takes secrets from the environment variables it
    names, and applies keyword overrides (from the command line)."""
    env = os.environ if environ is None else environ
    where = str(path) if path else "configuration"
    raw = _read(path) if path else {}
    file = validated(FileForm, raw if raw is not None else {}, where)
    keys = env.get(file.api_keys_env, "")
    values: dict[str, Any] = {
        "engine_url": file.engine.url,
        "engine_kind": file.engine.kind,
        "engine_timeout": file.engine.timeout,
        "engine_username": env.get(file.engine.username_env, "") if file.engine.username_env else "",
        "engine_password": env.get(file.engine.password_env, "") if file.engine.password_env else "",
        "engine_api_key": env.get(file.engine.api_key_env, "") if file.engine.api_key_env else "",
        "engine_credentials": file.engine.credentials,
        "reranker": file.reranker.address
        if isinstance(file.reranker.address, str)
        else tuple(file.reranker.address),
        "reranker_timeout": file.reranker.timeout,
        "host": file.listen.host,
        "port": file.listen.port,
        "tls_cert": file.listen.tls_cert,
        "tls_key": file.listen.tls_key,
        "api_keys": frozenset(k.strip() for k in keys.split(",") if k.strip()),
        "scoped_keys": tuple(
            (_scoped_key(env, variable, where), tuple(patterns))
            for variable, patterns in file.scoped_keys.items()
        ),
        "indices": tuple(
            (pattern, RerankSettings.from_dict(section, f"indices.{pattern}"))
            for pattern, section in file.indices.items()
        ),
        "allow": tuple(file.allow),
        "limits": Limits.of(file.limits),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return BridgeConfig(**values)
    except ValueError as error:
        raise RequestError(where, str(error)) from None
