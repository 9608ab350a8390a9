"""A small scripted HTTP/1.1 server for fault tests, on 127.0.0.1 in a thread of its own.

Each test gives it a ``respond(handler)`` function; :func:`send_file` serves one version of a
file with HEAD, single ``Range`` and ``If-Range`` support, and can drop the connection in the
middle of a body. Every request is recorded so tests can count attempts and check headers.
"""

from __future__ import annotations

import email.utils
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from quorus.core.testing import free_port

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Version:
    """One version of a served file."""

    data: bytes
    etag: str
    mtime: int = 1_700_000_000

    @property
    def last_modified(self) -> str:
        return email.utils.formatdate(self.mtime, usegmt=True)


@dataclass(frozen=True)
class Seen:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    #: The client's (address, port): requests on one kept-alive connection share it.
    peer: tuple[str, int] = ("", 0)


@dataclass
class ScriptedServer:
    port: int
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str = "/file.bin") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, method: str) -> int:
        return sum(1 for request in self.seen if request.method == method)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_any(self) -> None:
        peer = (str(self.client_address[0]), int(self.client_address[1]))
        self.server.script.seen.append(
            Seen(self.command, self.path, dict(self.headers.items()), peer))
        self.body = self._read_body() if self.server.read_body else b""
        self.server.respond(self)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_any

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Send a complete response."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drop(self) -> None:
        """Cut the connection without finishing the response."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on :attr:`ScriptedServer.seen` instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, respond: Callable[[Handler], None], read_body: bool) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.respond = respond
        self.read_body = read_body
        self.script = ScriptedServer(port)


@contextmanager
def scripted_server(
    respond: Callable[[Handler], None], *, read_body: bool = True
) -> Iterator[ScriptedServer]:
    """Run a server whose every request is answered by ``respond``.

    The request body is read into ``handler.body`` first, unless ``read_body`` is false
    (then ``respond`` reads ``handler.rfile`` itself).
    """
    server = _Server(free_port(), respond, read_body)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.script
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send_file(
    handler: Handler,
    version: Version,
    *,
    ranges: bool = True,
    drop_after: int | None = None,
    before_drop: Callable[[], None] | None = None,
) -> None:
    """Serve ``version``: HEAD, GET, one ``Range`` (if ``ranges``) and ``If-Range``.

    With ``drop_after`` the body is cut after that many bytes (``before_drop`` runs first).
    """
    data = version.data
    headers = {"ETag": version.etag, "Last-Modified": version.last_modified,
               "Accept-Ranges": "bytes" if ranges else "none"}
    start, end, status = 0, len(data), 200
    match = _RANGE.match(handler.headers.get("Range", ""))
    if_range = handler.headers.get("If-Range")
    if ranges and match and (if_range is None or if_range in (version.etag, version.last_modified)):
        start = int(match.group(1))
        end = min(len(data), int(match.group(2)) + 1) if match.group(2) else len(data)
        if start >= len(data):
            handler.reply(416, headers={"Content-Range": f"bytes */{len(data)}"})
            return
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(end - start))
    handler.end_headers()
    if handler.command == "HEAD":
        return
    body = memoryview(data)[start:end]
    if drop_after is None:
        handler.wfile.write(body)
        return
    handler.wfile.write(body[:drop_after])
    if before_drop is not None:
        before_drop()
    handler.drop()


def wait_until(condition: Callable[[], bool], *, seconds: float = 5.0) -> bool:
    """Poll ``condition`` (bounded in time); True if it became true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
