"""OpenSearch with its security plugin for the live tests: a node of the release
that carries it, and users made through the plugin's REST API as the
administrator, each with a role that may read some index patterns (search,
msearch, scroll and points in time, resolving index expressions)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rerank_bridge.devtools import local_engines
from support.live_fixtures import unavailable
from support.raw_http import RawResponse

RELEASE = "opensearch-3.4.0-security"

# An administrator's call: method, path, JSON body.
AdminCall = Callable[[str, str, Any], RawResponse]


def add_reader(call: AdminCall, user: str, password: str, patterns: list[str]) -> None:
    role = {
        "cluster_permissions": [
            "cluster_composite_ops_ro",
            "indices:data/read/scroll/clear",
            "indices:data/read/point_in_time/delete",
        ],
        "index_permissions": [
            {
                "index_patterns": patterns,
                "allowed_actions": ["read", "indices:admin/get", "indices:admin/resolve/index"],
            }
        ],
    }
    made = call("PUT", f"/_plugins/_security/api/roles/{user}_reader", role)
    assert made.status in (200, 201), made
    account = {"password": password, "opendistro_security_roles": [f"{user}_reader"]}
    made = call("PUT", f"/_plugins/_security/api/internalusers/{user}", account)
    assert made.status in (200, 201), made


@contextlib.contextmanager
def secured_node() -> Iterator[str]:
    """A local node of RELEASE, its URL; the administrator is local_engines.SECURITY_ADMIN."""
    try:
        running = local_engines.start(RELEASE)
    except Exception as error:
        unavailable(f"cannot start a local {RELEASE} node: {error}")
    try:
        yield running.url
    finally:
        running.stop()
