"""The bridge's settings, from a YAML or JSON file (and secrets from the environment).

engine:
  url: http://127.0.0.1:9200
  kind: auto                  # or elasticsearch / opensearch
  username_env: ENGINE_USER   # names of environment variables, never the secrets
  password_env: ENGINE_PASSWORD
  api_key_env: ENGINE_API_KEY
reranker: {address: 127.0.0.1:50051, timeout: 30}
listen: {host: 127.0.0.1, port: 8080, tls_cert: "", tls_key: ""}
api_keys_env: RERANK_BRIDGE_API_KEYS   # comma-separated; unset or empty: no key needed
indices:                                # reranking per index pattern (fnmatch)
  "docs*": {fields: [title, text], rank_window_size: 50}
allow: ["GET /_cluster/health"]         # extra pass-through paths (METHOD /pattern)
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_connectors.errors import RequestError
from rerank_connectors.settings import RerankSettings


@dataclass(frozen=True)
class BridgeConfig:
    engine_url: str
    engine_kind: str = "auto"
    engine_username: str = field(default="", repr=False)
    engine_password: str = field(default="", repr=False)
    engine_api_key: str = field(default="", repr=False)
    reranker: str = "127.0.0.1:50051"
    reranker_timeout: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str = ""
    tls_key: str = ""
    api_keys: frozenset[str] = field(default=frozenset(), repr=False)
    indices: tuple[tuple[str, RerankSettings], ...] = ()
    allow: tuple[str, ...] = ()

    def rerank_for(self, index: str) -> RerankSettings | None:
        """The configured settings of the first pattern that matches every index named."""
        names = [name.strip() for name in index.split(",")]
        for pattern, settings in self.indices:
            if all(fnmatch.fnmatchcase(name, pattern) for name in names):
                return settings
        return None

    def allows(self, method: str, path: str) -> bool:
        for rule in self.allow:
            allowed_method, _, pattern = rule.partition(" ")
            if allowed_method.upper() in (method.upper(), "*") and fnmatch.fnmatchcase(path, pattern):
                return True
        return False


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        loaded = yaml.safe_load(text)
    else:
        loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise RequestError(str(path), "the configuration must be a mapping")
    return loaded


def load_config(
    path: Path | None, environ: Mapping[str, str] | None = None, **overrides: Any
) -> BridgeConfig:
    """Reads the file (if any), takes secrets from the environment variables it
    names, and applies keyword overrides (from the command line)."""
    env = os.environ if environ is None else environ
    raw = _read(path) if path else {}
    engine = raw.get("engine", {})
    reranker = raw.get("reranker", {})
    listen = raw.get("listen", {})
    keys = env.get(raw.get("api_keys_env", "RERANK_BRIDGE_API_KEYS"), "")
    values: dict[str, Any] = {
        "engine_url": engine.get("url", "http://127.0.0.1:9200"),
        "engine_kind": engine.get("kind", "auto"),
        "engine_username": env.get(engine.get("username_env", ""), ""),
        "engine_password": env.get(engine.get("password_env", ""), ""),
        "engine_api_key": env.get(engine.get("api_key_env", ""), ""),
        "reranker": reranker.get("address", "127.0.0.1:50051"),
        "reranker_timeout": float(reranker.get("timeout", 30.0)),
        "host": listen.get("host", "127.0.0.1"),
        "port": int(listen.get("port", 8080)),
        "tls_cert": listen.get("tls_cert", ""),
        "tls_key": listen.get("tls_key", ""),
        "api_keys": frozenset(k.strip() for k in keys.split(",") if k.strip()),
        "indices": tuple(
            (pattern, RerankSettings.from_dict(section, f"indices.{pattern}"))
            for pattern, section in raw.get("indices", {}).items()
        ),
        "allow": tuple(raw.get("allow", ())),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return BridgeConfig(**values)
