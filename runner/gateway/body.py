"""Read a request body off the client's connection, bounded, in either framing HTTP/1.1 allows.

The gateway reads whole bodies before it forwards them (it must see the model
and the output limit to meter and cap the call), so the size is bounded here:
a body over :data:`MAX_BODY_BYTES` is refused with 413 and the connection
closed. A refused request's body is read off the wire when it is small, so a
kept-alive connection stays usable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

MAX_BODY_BYTES = 64 * 1024 * 1024
_DISCARD_LIMIT = 1024 * 1024


class Reader(Protocol):
    """The client connection's buffered reader (``BaseHTTPRequestHandler.rfile``)."""

    def read(self, size: int | None = ..., /) -> bytes: ...

    def readline(self, size: int | None = ..., /) -> bytes: ...


class Headers(Protocol):
    """The request's headers, looked up without regard to case (``BaseHTTPRequestHandler.headers``)."""

    def get(self, name: str, default: Any = None, /) -> Any: ...


@dataclass(frozen=True)
class BadBody:
    """Why a body could not be read: the status to answer, and a sentence for the client."""

    status: int
    message: str


TOO_LARGE = BadBody(413, "The request body is too large for the model gateway.")


def read_body(rfile: Reader, headers: Headers) -> bytes | BadBody:
    """The request body (``Content-Length`` or chunked); after a :class:`BadBody` the connection must close."""
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        return _read_chunked(rfile)
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        length = -1
    if length < 0 or length > MAX_BODY_BYTES:
        return TOO_LARGE
    return rfile.read(length) if length else b""


def _read_chunked(rfile: Reader) -> bytes | BadBody:
    body = bytearray()
    while True:
        line = rfile.readline(1024)
        try:
            size = int(line.split(b";")[0].strip() or b"x", 16)
        except ValueError:
            return BadBody(400, "The request's chunked body is malformed.")
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            return TOO_LARGE
        body += rfile.read(size)
        rfile.readline(1024)


def discard_body(rfile: Reader, headers: Headers) -> bool:
    """Read a refused request's body off the wire (bounded); False when the connection must close instead."""
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        length = 0
    if 0 < length <= _DISCARD_LIMIT:
        rfile.read(length)
        return True
    return not (length or headers.get("transfer-encoding"))
