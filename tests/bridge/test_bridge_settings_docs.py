"""The bridge's settings are declared once, in config.py's forms: what the docs and the
shipped files say about them is checked against those forms, so a changed default fails
here until the prose says it too.

- docs/bridge.md names every limit with its default, as `limits.NAME` (DEFAULT ...);
- config.py's own docstring shows the whole limits section with its defaults;
- docker/bridge.yaml sets only what differs from a default (a copied default would go
  stale unseen when the default moves), but the port its container's wiring needs."""

from __future__ import annotations

import re
from typing import Any

import yaml

from rerank_bridge.bridge import config
from rerank_bridge.bridge.config import EngineForm, FileForm, LimitsForm, ListenForm, RerankerForm
from rerank_bridge.devtools import checkout

MIB = 1024 * 1024
# What the image's wiring depends on (the Dockerfile's EXPOSE, compose's port mapping):
# pinned in the file, whatever the default becomes.
PINNED = {"listen.port"}


def shown(name: str, value: Any) -> str:
    """A default as the docs write it."""
    if value is None:
        return "unset by default"
    if name == "max_body_bytes":
        return f"{value // MIB} MiB"
    if isinstance(value, float):
        return f"{value:g} s"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def test_the_docs_name_every_limit_with_its_default() -> None:
    text = (checkout.root() / "docs" / "bridge.md").read_text()
    # The default is what the parenthesis opens with: "(10 MiB, counted after decompression)".
    mentioned = [
        (name, said.split(", ")[0]) for name, said in re.findall(r"`limits\.([a-z_]+)` \(([^)]+)\)", text)
    ]
    defaults = LimitsForm().model_dump()
    assert {name for name, _ in mentioned} == set(defaults)
    for name, said in mentioned:
        assert said == shown(name, defaults[name]), name


def test_the_module_docstring_shows_the_limits_defaults() -> None:
    assert config.__doc__ is not None
    example = config.__doc__.split("\n\n")[1]
    shown_limits = yaml.safe_load(example)["limits"]
    assert shown_limits == LimitsForm().model_dump()


def test_the_shipped_bridge_file_sets_only_what_differs_from_a_default() -> None:
    shipped = yaml.safe_load((checkout.root() / "docker" / "bridge.yaml").read_text())
    forms = {
        "engine": EngineForm(),
        "reranker": RerankerForm(),
        "listen": ListenForm(),
        "limits": LimitsForm(),
    }
    top = FileForm()
    for key, value in shipped.items():
        if key in forms:
            for name, set_to in value.items():
                if f"{key}.{name}" in PINNED:
                    continue
                assert set_to != getattr(forms[key], name), f"{key}.{name} repeats its default"
        else:
            assert value != getattr(top, key), f"{key} repeats its default"
