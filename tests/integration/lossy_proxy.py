"""A test HTTP proxy in front of the emulator that loses SubmitJob replies *after* forwarding the request.

The server accepted the job; the client only sees its connection closed, exactly what a reset or a timeout after
AWS took the request looks like. Which replies are lost is chosen by job name, so a test is reproducible.

``stale_lists`` models ListJobs's eventual consistency (AWS: a job may not be listed, even described, right after
SubmitJob): the first that many ListJobs answers leave out the jobs whose replies were lost.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class LossyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, lose: Callable[[str, int], bool], stale_lists: int = 0) -> None:
        """``lose(job_name, attempt)`` says whether to lose the reply of the attempt-th SubmitJob of that name."""
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lose = lose
        self.attempts: Counter[str] = Counter()
        self.lost: list[str] = []
        self.lost_ids: set[str] = set()
        self.stale_lists = stale_lists
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LossyProxy

    def log_message(self, format: str, *args: object) -> None:
        return

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        lose = False
        if self.path.rstrip("/").lower().endswith("/submitjob"):
            name = str(json.loads(body or b"{}").get("jobName", ""))
            with self.server.lock:
                self.server.attempts[name] += 1
                lose = self.server.lose(name, self.server.attempts[name])
                if lose:
                    self.server.lost.append(name)
        connection = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        if lose:
            with self.server.lock:
                self.server.lost_ids.add(str(json.loads(data).get("jobId")))
        elif self.path.rstrip("/").lower().endswith("/listjobs") and response.status == 200:
            data = self._stale(data)
        if lose:
            # The job exists upstream; the client gets no answer at all.
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stale(self, data: bytes) -> bytes:
        with self.server.lock:
            if self.server.stale_lists <= 0 or not self.server.lost_ids:
                return data
            self.server.stale_lists -= 1
            hidden = set(self.server.lost_ids)
        page = json.loads(data)
        page["jobSummaryList"] = [j for j in page.get("jobSummaryList", []) if j.get("jobId") not in hidden]
        return json.dumps(page).encode()

    do_GET = do_POST = do_PUT = do_DELETE = _forward  # http.server dispatches on these names


@contextmanager
def lossy_proxy(upstream: str, lose: Callable[[str, int], bool], stale_lists: int = 0) -> Iterator[LossyProxy]:
    proxy = LossyProxy(upstream, lose, stale_lists)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
