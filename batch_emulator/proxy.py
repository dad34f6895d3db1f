"""An HTTP proxy in front of the emulator that injects network and service faults the server itself cannot show:
requests refused before they reach it (throttling), and replies lost after it applied a request.

A subclass decides per request in :meth:`FaultProxy.exchange`: answer itself, forward and pass the reply on
(possibly changed), or forward and then drop the connection (the client sees a reset after AWS took the request).
Used by bench/throttle_proxy.py and tests/integration/lossy_proxy.py.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar
from urllib.parse import urlsplit

# Headers of the upstream reply that the proxy sets itself (or that describe the upstream connection).
_HOP_HEADERS = ("transfer-encoding", "connection", "content-length", "server", "date")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class FaultProxy(ThreadingHTTPServer):
    """Forwards every request to ``upstream``; override :meth:`exchange` to inject faults."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def exchange(self, operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply | None:
        """The reply to send for one request (``operation``: the last path segment, lower case, e.g.
        ``submitjob``); None drops the connection without a reply. ``forward()`` sends it upstream."""
        return forward()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, format: str, *args: object) -> None:
        return

    def _forward(self, body: bytes) -> Reply:
        connection = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = tuple((k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS)
            return Reply(response.status, kept, data)
        finally:
            connection.close()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        operation = self.path.rstrip("/").rsplit("/", 1)[-1].lower()
        reply = self.server.exchange(operation, body, lambda: self._forward(body))
        if reply is None:
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(reply.status)
        for key, value in reply.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # http.server dispatches on these names


P = TypeVar("P", bound=FaultProxy)


@contextmanager
def serving(proxy: P) -> Iterator[P]:
    """Serve ``proxy`` on a thread for the duration of the block."""
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
