"""The HTTP server's own log, kept for what the bridge's operators need.

aiohttp logs a request it cannot parse (a malformed request line or header, a
body framing it refuses) at ERROR with a traceback, before any API key is
checked: anyone who can reach the port could fill the log. Such a request is
the caller's mistake, already answered 400 by aiohttp, so here it is counted
(`rerank_bridge_malformed_requests_total`) and logged at DEBUG in one line
without a traceback. Every other record of the server passes as it was.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

from rerank_bridge.bridge.metrics import MALFORMED_REQUESTS


class _MalformedRequests(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        MALFORMED_REQUESTS.inc()
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        record.msg, record.args = "malformed HTTP request refused (400): %s", (type(error).__name__,)
        record.exc_info, record.exc_text = None, None
        return SERVER_LOG.isEnabledFor(logging.DEBUG)


# Handed to aiohttp's server (AppRunner's `logger`) in place of its own "aiohttp.server".
SERVER_LOG = logging.getLogger("rerank_bridge.bridge.http")
SERVER_LOG.addFilter(_MalformedRequests())
