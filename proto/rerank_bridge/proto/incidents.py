"""The incident id of an unexpected failure: every INTERNAL answer, of the scoring
server and of the bridge, names one, and one log line carries it with the traceback,
so an operator finds the cause from what the caller was told."""

from __future__ import annotations

import logging
import uuid


def report_incident(log: logging.Logger, what: str, request_id: str = "-") -> str:
    """Logs the exception being handled under a new incident id, and returns the id.
    Call it from an `except` block."""
    incident = uuid.uuid4().hex[:16]
    log.exception("incident=%s request_id=%s %s", incident, request_id, what)
    return incident
