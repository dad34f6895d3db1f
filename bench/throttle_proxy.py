"""A small HTTP proxy that throttles like AWS Batch: SubmitJob capped at N requests/s, plus a random share of 429s.

Requests it refuses never reach the server, as with AWS, so a client that retries them submits each job once.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

THROTTLED_BODY = b'{"__type":"TooManyRequestsException","message":"Too Many Requests"}'


class Bucket:
    """Token bucket: ``rate`` tokens per second, burst ``rate`` (AWS's own limits are a bucket too)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class ThrottleProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, submit_rate: float, share: float, seed: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.bucket = Bucket(submit_rate)
        self.share = share
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThrottleProxy

    def log_message(self, format: str, *args: object) -> None:
        return

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        submit = self.path.rstrip("/").lower().endswith("/submitjob")
        proxy = self.server
        if submit:
            with proxy.lock:
                unlucky = proxy.random.random() < proxy.share
            if unlucky or not proxy.bucket.take():
                with proxy.lock:
                    proxy.counts["throttled"] += 1
                self.send_response(429)
                self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
                self.send_header("Content-Length", str(len(THROTTLED_BODY)))
                self.end_headers()
                self.wfile.write(THROTTLED_BODY)
                return
            with proxy.lock:
                proxy.counts["SubmitJob"] += 1
        connection = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

    do_GET = do_POST = do_PUT = do_DELETE = _forward  # http.server dispatches on these names


@contextmanager
def throttle_proxy(
    upstream: str, submit_rate: float = 50.0, share: float = 0.1, seed: int = 0
) -> Iterator[ThrottleProxy]:
    proxy = ThrottleProxy(upstream, submit_rate, share, seed)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
