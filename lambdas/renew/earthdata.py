"""PO.DAAC temporary S3 credentials through the Earthdata Login flow (standard library only).

The flow is the one PO.DAAC documents for its ``s3credentials`` endpoint:

1. GET the endpoint without following redirects; ``Location`` is the Earthdata Login authorize URL.
2. POST ``credentials=base64("user:pass")`` (form-encoded) there with an ``Origin`` header naming the endpoint;
   Earthdata answers with a redirect back to the archive.
3. GET that redirect without following it; the archive sets the ``accessToken`` cookie.
4. GET the endpoint again with the cookie -> JSON ``accessKeyId``, ``secretAccessKey``, ``sessionToken``,
   ``expiration``.

Every request is retried (bounded, exponential backoff with jitter) on timeouts, connection errors and 5xx;
401/403 mean the username or password is wrong and are never retried. Nothing here logs or puts into an error
message a password, the encoded credentials, the cookie or a credential value; every secret the flow handles is
also registered with :data:`REDACTOR`, a logging filter that masks it in any log line, whoever writes it.

The password goes only to an Earthdata Login host over https (``LOGIN_HOSTS``; the endpoint's ``Location`` is
checked before anything is posted), and the cookie only to the configured endpoint over https. Plain http is
accepted for loopback addresses alone, which never leave the machine (the tests' fake Earthdata).
"""

from __future__ import annotations

import base64
import http.client
import http.cookiejar
import json
import logging
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

LOG = logging.getLogger("renew.earthdata")

DEFAULT_ENDPOINT = "https://archive.podaac.earthdata.nasa.gov/s3credentials"
# Earthdata Login (production and the user-acceptance environment): the only hosts the password is posted to.
LOGIN_HOSTS = ("urs.earthdata.nasa.gov", "uat.urs.earthdata.nasa.gov")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
REQUIRED_FIELDS = ("accessKeyId", "secretAccessKey", "sessionToken", "expiration")


class RenewError(Exception):
    """Base of every failure the renew Lambda raises on purpose (the message never carries a secret)."""


class CredentialsRejected(RenewError):
    """Earthdata Login or the endpoint answered 401/403: the username/password in the secret are wrong."""


class EndpointError(RenewError):
    """The endpoint kept failing (timeouts, 5xx) or answered something the flow does not expect."""


class MalformedAnswer(RenewError):
    """The endpoint answered 200 but not with the four credential fields."""


class Redactor(logging.Filter):
    """Masks every registered secret in a log record (message, arguments and traceback) before any handler sees
    it. Attached to the handlers of the root logger, so it covers botocore's and any library's lines too."""

    MASK = "***"

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str) -> None:
        with self._lock:
            # Short strings (a region, "true") would mask innocent text; no secret here is that short.
            self._secrets.update(v for v in values if isinstance(v, str) and len(v) >= 6)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, self.MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report, not ours
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    def install(self, logger: logging.Logger | None = None) -> None:
        """Attach to every handler of ``logger`` (default: the root logger, where the Lambda runtime logs)."""
        for handler in (logger or logging.getLogger()).handlers:
            if self not in handler.filters:
                handler.addFilter(self)


REDACTOR = Redactor()


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts and retry bounds; the Lambda reads them from its environment so tests can shorten them."""

    timeout: float = 10.0
    attempts: int = 4
    backoff: float = 1.0
    backoff_cap: float = 8.0
    login_hosts: tuple[str, ...] = LOGIN_HOSTS  # host or host:port the password may be posted to


@dataclass(frozen=True, repr=False)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: str

    def __repr__(self) -> str:
        # A repr in a traceback or a debug log must not leak the credentials.
        return f"TemporaryCredentials(expiration={self.expiration!r})"


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    url: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Every redirect of the flow must be seen (its Location or its cookie matters), so none is followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _host(url: str) -> str:
    # Only the host goes into logs: login URLs carry client ids and state we have no reason to print.
    return urllib.parse.urlsplit(url).netloc or url


def _req(
    url: str, *, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> urllib.request.Request:
    # Locations come from the server: only http(s) may be opened, never file: or a custom scheme.
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise EndpointError(f"refusing to open {urllib.parse.urlsplit(url).scheme or 'scheme-less'} URL {_host(url)}")
    return urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - checked above


def _request_once(request: urllib.request.Request, timeout: float) -> _Answer:
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return _Answer(response.status, response.headers, response.read(), request.full_url)
    except urllib.error.HTTPError as e:
        # Non-2xx answers (including the redirects we refuse to follow) arrive as HTTPError.
        try:
            body = e.read()
        finally:
            e.close()
        return _Answer(e.code, e.headers, body, request.full_url)


def _is_timeout(error: BaseException) -> bool:
    reason = getattr(error, "reason", error)
    return isinstance(reason, socket.timeout | TimeoutError)


def request(
    build: Callable[[], urllib.request.Request],
    settings: HttpSettings,
    *,
    step: str,
    sleep: Callable[[float], None] = time.sleep,
) -> _Answer:
    """One HTTP step with bounded retries on timeouts, connection errors and 5xx."""
    last = ""
    for attempt in range(1, settings.attempts + 1):
        req = build()
        try:
            answer = _request_once(req, settings.timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            last = "timed out" if _is_timeout(e) else f"connection failed ({type(getattr(e, 'reason', e)).__name__})"
        else:
            if answer.status in (401, 403):
                raise CredentialsRejected(
                    f"{step}: {_host(req.full_url)} answered HTTP {answer.status}; Earthdata Login rejected the "
                    "username/password (check the secret's value)"
                )
            if answer.status < 500:
                return answer
            last = f"HTTP {answer.status}"
        if attempt < settings.attempts:
            delay = min(settings.backoff_cap, settings.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            LOG.warning(
                "%s: %s %s (attempt %d/%d), retrying in %.2f s",
                step,
                _host(req.full_url),
                last,
                attempt,
                settings.attempts,
                delay,
            )
            sleep(delay)
    raise EndpointError(f"{step}: {_host(build().full_url)} {last} after {settings.attempts} attempts")


def _check_destination(url: str, hosts: tuple[str, ...] | None, what: str) -> None:
    """Refuse to send ``what`` anywhere but https (loopback excepted) and, given ``hosts``, those hosts."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK):
        raise EndpointError(f"refusing to send {what} to {parts.scheme or 'scheme-less'} URL {_host(url)}: https only")
    if hosts is not None and parts.netloc not in hosts and host not in hosts:
        raise EndpointError(
            f"refusing to send {what} to {_host(url)}: not an Earthdata Login host ({', '.join(hosts)})"
        )


def _location(answer: _Answer, step: str) -> str:
    if answer.status not in REDIRECT_CODES or not answer.headers.get("Location"):
        raise EndpointError(f"{step}: expected a redirect from {_host(answer.url)}, got HTTP {answer.status}")
    # A relative Location is resolved against the URL that answered, as a browser would.
    return urllib.parse.urljoin(answer.url, answer.headers["Location"])


def _access_token(answer: _Answer, request_: urllib.request.Request) -> str:
    jar = http.cookiejar.CookieJar()

    class _Response:  # the cookie jar only needs info()
        def info(self) -> http.client.HTTPMessage:
            return answer.headers

    jar.extract_cookies(_Response(), request_)  # type: ignore[arg-type]
    for cookie in jar:
        if cookie.name == "accessToken" and cookie.value:
            return cookie.value
    raise EndpointError(
        f"login redirect: {_host(answer.url)} answered HTTP {answer.status} without an accessToken cookie"
    )


def parse_credentials(body: bytes) -> TemporaryCredentials:
    """Validate the endpoint's JSON; the message names what is wrong, never the values."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedAnswer(f"s3credentials answer is not JSON ({len(body)} bytes)") from e
    if not isinstance(data, dict):
        raise MalformedAnswer(f"s3credentials answer is a JSON {type(data).__name__}, expected an object")
    bad = [k for k in REQUIRED_FIELDS if not isinstance(data.get(k), str) or not data[k].strip()]
    if bad:
        raise MalformedAnswer(f"s3credentials answer lacks non-empty string field(s): {', '.join(bad)}")
    try:
        datetime.fromisoformat(data["expiration"])
    except ValueError as e:
        raise MalformedAnswer(f"s3credentials expiration {data['expiration']!r} is not an ISO date-time") from e
    REDACTOR.add(data["accessKeyId"], data["secretAccessKey"], data["sessionToken"])
    return TemporaryCredentials(data["accessKeyId"], data["secretAccessKey"], data["sessionToken"], data["expiration"])


def fetch_credentials(
    endpoint: str,
    username: str,
    password: str,
    settings: HttpSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> TemporaryCredentials:
    """Run the whole Earthdata Login flow and return validated temporary credentials."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    form = urllib.parse.urlencode({"credentials": encoded}).encode("ascii")
    REDACTOR.add(password, encoded, urllib.parse.quote(encoded, safe=""), form.decode("ascii"))
    _check_destination(endpoint, None, "the login cookie")
    LOG.info("requesting temporary credentials from %s", _host(endpoint))
    first = request(lambda: _req(endpoint), settings, step="endpoint", sleep=sleep)
    login_url = _location(first, "endpoint")
    _check_destination(login_url, settings.login_hosts, "the Earthdata password")
    LOG.info("logging in at %s", _host(login_url))
    login = request(
        lambda: _req(
            login_url,
            data=form,
            method="POST",
            headers={"Origin": endpoint, "Content-Type": "application/x-www-form-urlencoded"},
        ),
        settings,
        step="login",
        sleep=sleep,
    )
    back_url = _location(login, "login")

    back_request = _req(back_url)
    back = request(lambda: _req(back_url), settings, step="login redirect", sleep=sleep)
    token = _access_token(back, back_request)
    REDACTOR.add(token)

    final = request(
        lambda: _req(endpoint, headers={"Cookie": f"accessToken={token}"}),
        settings,
        step="credentials",
        sleep=sleep,
    )
    if final.status != 200:
        raise EndpointError(f"credentials: {_host(endpoint)} answered HTTP {final.status}, expected 200")
    return parse_credentials(final.body)
