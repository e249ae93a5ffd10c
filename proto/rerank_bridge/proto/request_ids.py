"""The request id both services log and pass along (gRPC metadata `x-request-id`,
HTTP header `X-Request-Id`).

An id arrives from outside and ends up in log lines, so only a short printable
token is kept (the characters RFC 9110 allows in a token: no spaces, quotes
or separators that could forge a second `key=value` field); anything else is
replaced by a fresh id rather than repaired.
"""

from __future__ import annotations

import re
import uuid

METADATA_KEY = "x-request-id"
MAX_LENGTH = 128
_TOKEN = re.compile(rf"[A-Za-z0-9!#$%&'*+.^_`|~-]{{1,{MAX_LENGTH}}}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(given: str | None) -> str:
    """The caller's id when it is a short printable token, else a new one."""
    if given and _TOKEN.fullmatch(given):
        return given
    return new_request_id()
