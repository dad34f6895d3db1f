"""Fixtures for the renew Lambda, its runtime commands and its stack.

* ``moto_url``: one moto server subprocess per session on a free 127.0.0.1 port (Lambda in moto's Docker-less
  "simple" mode); ``aws_env`` resets it before each test and points boto3 at it with dummy credentials.
* ``earthdata``: a threaded HTTP server playing Earthdata Login and PO.DAAC's s3credentials endpoint, with
  switchable failure modes.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

REGION = "us-west-2"
ROOT = Path(__file__).resolve().parents[2]
LAMBDA_DIR = ROOT / "lambdas" / "renew"

USERNAME = "swot-user"
PASSWORD = "p@ss-WORD-s3cr3t"
COOKIE = "cookie-VALUE-4f1e"
ANSWER = {
    "accessKeyId": "ASIAFAKEACCESSKEY42",
    "secretAccessKey": "secret-ACCESS-key-value-9b7",
    "sessionToken": "session-TOKEN-value-c3d",
    "expiration": "2026-11-20 19:37:01+00:00",
}
# Everything a log line must never contain.
SECRETS = (
    PASSWORD,
    base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
    COOKIE,
    ANSWER["accessKeyId"],
    ANSWER["secretAccessKey"],
    ANSWER["sessionToken"],
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=5).read()  # noqa: S310


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()  # noqa: S310
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # A loaded machine (parallel suites) can keep werkzeug from exiting promptly; do not fail the session.
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto state; boto3 (in-process handler and CLI alike) talks to it with dummy credentials."""
    _post(f"{moto_url}/moto-api/reset")
    # There is no Docker here: moto's simple Lambda answers invocations without running code.
    _post(f"{moto_url}/moto-api/config", {"lambda": {"use_docker": False}})
    for name, value in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return moto_url


@pytest.fixture
def boto(aws_env: str) -> Any:
    """boto3 clients on the moto server: ``boto("ssm")``."""

    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=aws_env, region_name=REGION)

    return make


@dataclass
class EarthdataState:
    """What the fake server does next and what it saw."""

    fail_first: int = 0  # answer HTTP 500 to this many credential GETs before succeeding
    delay: float = 0.0  # sleep this long before answering the credential GET (past the client's timeout)
    body: bytes | None = None  # replaces the JSON answer (malformed answers)
    origins: list[str] = field(default_factory=list)
    credential_gets: int = 0
    login_location: str | None = None  # where the endpoint sends an unauthenticated client (default: this server)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _redirect(self, location: str, cookie: str | None = None) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        if path == "/s3credentials":
            if f"accessToken={COOKIE}" not in (self.headers.get("Cookie") or ""):
                # Like the archive: an unauthenticated request is sent to Earthdata Login.
                self._redirect(
                    state.login_location or f"{self.server.base}/oauth/authorize?client_id=podaac&response_type=code"
                )
                return
            state.credential_gets += 1
            if state.delay:
                time.sleep(state.delay)
            if state.credential_gets <= state.fail_first:
                self._send(500, b"internal error", "text/plain")
                return
            self._send(200, state.body if state.body is not None else json.dumps(ANSWER).encode())
        elif path == "/redirect":
            self._redirect("/s3credentials", cookie=f"accessToken={COOKIE}; Path=/; HttpOnly")
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        state = self.server.state
        if urllib.parse.urlsplit(self.path).path != "/oauth/authorize":
            self._send(404, b"{}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        state.origins.append(self.headers.get("Origin") or "")
        expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        if form.get("credentials") != [expected] or self.headers.get("Origin") != self.server.endpoint:
            self._send(401, b'{"error": "invalid_credentials"}')
            return
        self._redirect(f"{self.server.base}/redirect?code=abc123")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: EarthdataState
    base: str
    endpoint: str


@dataclass
class Earthdata:
    endpoint: str
    server: _Server

    @property
    def state(self) -> EarthdataState:
        return self.server.state


@pytest.fixture(scope="session")
def _earthdata_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    server.endpoint = f"{server.base}/s3credentials"
    server.state = EarthdataState()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def earthdata(_earthdata_server: _Server) -> Earthdata:
    _earthdata_server.state = EarthdataState()
    return Earthdata(_earthdata_server.endpoint, _earthdata_server)


@pytest.fixture(scope="session")
def handler_module() -> Any:
    """lambdas/renew/handler.py imported as the Lambda runtime would (its directory on sys.path)."""
    sys.path.insert(0, str(LAMBDA_DIR))
    import handler

    return handler
