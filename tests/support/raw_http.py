"""HTTP/1.1 requests written by hand: the target goes out exactly as given,
which no client library allows (they normalise dot segments and encodings)."""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; the last of repeated ones
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def send(
    port: int, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> RawResponse:
    """One request on its own connection (closed after the answer)."""
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        head.append(f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        # A server may answer (413) and close before the whole body is sent: read the answer anyway.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head_bytes, _, payload = received.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return RawResponse(int(lines[0].split(" ")[1]), fields, payload)


class Caller:
    """A service reached with raw requests as one caller (its headers) sees it: a
    body goes as JSON, or as NDJSON when given as bytes."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.headers = headers

    def call(self, method: str, path: str, body: Any = None) -> RawResponse:
        headers = dict(self.headers)
        payload = b""
        if isinstance(body, bytes):
            headers["Content-Type"], payload = "application/x-ndjson", body
        elif body is not None:
            headers["Content-Type"], payload = "application/json", json.dumps(body).encode()
        return send(self.port, method, path, headers, payload)
