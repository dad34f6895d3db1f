"""The emulator process: moto's own WSGI app behind a small middleware that adds the control API under
``/_emulator/`` and injects HTTP errors into Batch calls; plus ``start_emulator`` to run it as a subprocess.

moto is imported lazily, only in the server process: a test process that merely starts it stays light.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

CONTROL_PREFIX = "/_emulator/"
READY_LINE = "batch emulator listening on"

# Batch's REST paths are /v1/<lowercased operation>; counters and throttling use the AWS operation names.
_OPERATIONS = {
    name.lower(): name
    for name in (
        "SubmitJob",
        "DescribeJobs",
        "ListJobs",
        "CancelJob",
        "TerminateJob",
        "CreateComputeEnvironment",
        "DescribeComputeEnvironments",
        "UpdateComputeEnvironment",
        "DeleteComputeEnvironment",
        "CreateJobQueue",
        "DescribeJobQueues",
        "UpdateJobQueue",
        "DeleteJobQueue",
        "RegisterJobDefinition",
        "DeregisterJobDefinition",
        "DescribeJobDefinitions",
        "CreateSchedulingPolicy",
        "DescribeSchedulingPolicies",
        "ListSchedulingPolicies",
        "DeleteSchedulingPolicy",
        "UpdateSchedulingPolicy",
        "GetJobQueueSnapshot",
        "CreateConsumableResource",
        "DescribeConsumableResource",
        "ListConsumableResources",
        "UpdateConsumableResource",
        "DeleteConsumableResource",
        "ListJobsByConsumableResource",
    )
}
_ERROR_CODES = {429: "TooManyRequestsException", 500: "ServerException", 503: "ServiceUnavailableException"}

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def batch_operation(environ: dict[str, Any]) -> str | None:
    """The Batch operation of a request, or None for any other service (which passes untouched)."""
    path = environ.get("PATH_INFO", "")
    if not path.startswith("/v1/") or "/batch/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
        return None
    segment = path[4:].split("/", 1)[0]
    return _OPERATIONS.get(segment, segment)


def _json(
    start_response: StartResponse,
    status: int,
    body: Any,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(headers or [])],
    )
    return [data]


class EmulatorMiddleware:
    """Wraps moto's DomainDispatcherApplication."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(path[len(CONTROL_PREFIX) :], environ, start_response)
        if "/logs/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
            from .backend import OBSERVER

            OBSERVER.flush_logs()  # job log lines reach moto's Logs backend before any Logs call reads it
        operation = batch_operation(environ)
        if operation is not None:
            from .backend import INJECTOR

            status = INJECTOR.on_call(operation)
            if status is not None:
                code = _ERROR_CODES.get(status, "ServerException")
                # restJson1 errors: botocore reads the code from x-amzn-ErrorType / __type and retries
                # TooManyRequestsException and 5xx, which is what a throttled real endpoint looks like.
                body = {"__type": code, "message": f"Injected by batch emulator ({operation})"}
                return _json(start_response, status, body, [("x-amzn-ErrorType", code)])
        return self.app(environ, start_response)

    def _control(self, action: str, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        body = json.loads(raw) if raw else {}
        try:
            result = self._apply(action, body)
        except (KeyError, TypeError, ValueError) as error:
            return _json(start_response, 400, {"error": f"{action}: {error}"})
        if result is None:
            return _json(start_response, 404, {"error": f"unknown control action {action!r}"})
        return _json(start_response, 200, result)

    @staticmethod
    def _apply(action: str, body: dict[str, Any]) -> dict[str, Any] | None:
        from .backend import ENGINE, INJECTOR, LAMBDA_STUBS, OBSERVER
        from .effects import EventSettings
        from .injection import FailRule, Throttle

        if action == "health":
            return {"ok": True}
        if action == "reset":
            INJECTOR.reset()
            ENGINE.reset()
            OBSERVER.reset()
            LAMBDA_STUBS.clear()
            return {"ok": True}
        if action == "durations":
            with ENGINE.lock:
                current = ENGINE.durations
                for key in ("default", "queue", "time_limit_scale"):
                    if body.get(key) is not None:
                        setattr(current, key, float(body[key]))
                if body.get("min_timeout") is not None:
                    current.min_timeout = int(body["min_timeout"])
                for key in ("by_definition", "by_name", "by_run"):
                    getattr(current, key).update({k: float(v) for k, v in (body.get(key) or {}).items()})
            return {"ok": True}
        if action == "retention":
            seconds = body.get("seconds")
            with ENGINE.lock:
                ENGINE.retention = float(seconds) if seconds is not None else None
            return {"ok": True}
        if action == "events":
            OBSERVER.configure(EventSettings.from_json(body))
            return {"ok": True}
        if action == "lambda":
            if body.get("response") is None:
                LAMBDA_STUBS.pop(str(body["function"]), None)
            else:
                LAMBDA_STUBS[str(body["function"])] = body["response"]
            return {"ok": True}
        if action == "fail":
            INJECTOR.add_fail_rule(FailRule.from_json(body))
            return {"ok": True}
        if action == "throttle":
            operations = body.get("operations")
            rate = body.get("submit_rate")
            with INJECTOR.lock:
                INJECTOR.throttle = Throttle(
                    share=float(body.get("share", 0.0)),
                    status=int(body.get("status", 429)),
                    operations=frozenset(operations) if operations else None,
                    submit_rate=float(rate) if rate is not None else None,
                    seed=int(body.get("seed", 0)),
                )
            return {"ok": True}
        if action == "counters":
            return {**INJECTOR.counters(), "effects": dict(OBSERVER.counts)}
        if action == "quota":
            with ENGINE.lock:
                for option, key in (("FARGATE", "fargate"), ("FARGATE_SPOT", "fargate_spot")):
                    if body.get(key) is not None:
                        value = float(body[key])
                        if value < 0:
                            raise ValueError(f"{key} must be at least 0 vCPUs, got {value:g}")
                        ENGINE.usage.fargate_quota[option] = value
                quota = dict(ENGINE.usage.fargate_quota)
            ENGINE.capacity_changed()
            return {"fargate": quota["FARGATE"], "fargate_spot": quota["FARGATE_SPOT"]}
        if action == "hold":
            hold = ENGINE.hold(
                str(body.get("state") or "").upper(),
                job_id=str(body["job_id"]) if body.get("job_id") else None,
                name_glob=str(body["name_glob"]) if body.get("name_glob") else None,
            )
            return hold.as_json()
        if action == "release":
            ids = body.get("hold_ids")
            released = ENGINE.release(None if ids is None else [int(i) for i in ids])
            return {"released": [h.as_json() for h in released]}
        if action == "holds":
            return {"holds": [{**h.as_json(), "held": ENGINE.held_ids(h)} for h in list(ENGINE.holds.values())]}
        if action == "image":
            from .images import push_image

            return push_image(
                str(body["repository"]),
                str(body["tag"]),
                content=str(body.get("content") or ""),
                account=str(body.get("account") or "123456789012"),  # moto's default account
                region=str(body.get("region") or "us-west-2"),
            )
        if action == "pause":
            with ENGINE.lock:
                ENGINE.clock.pause()
            return {"ok": True}
        if action == "resume":
            with ENGINE.lock:
                ENGINE.clock.resume()
            return {"ok": True}
        return None


def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    """Run the emulator in this process until SIGTERM/SIGINT; prints the ready line with the bound port."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from .backend import install

    install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per job poll drowns test output
    app = EmulatorMiddleware(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"{READY_LINE} http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        from .backend import ENGINE

        ENGINE.stop()
        server.server_close()


@dataclass
class EmulatorProcess:
    """A running emulator subprocess."""

    process: subprocess.Popen[str]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


@contextlib.contextmanager
def start_emulator(
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> Iterator[EmulatorProcess]:
    """Start ``python -m batch_emulator`` as a subprocess, wait until it answers, stop it on exit.

    With ``port=None`` the child binds port 0 and reports the port it got, so parallel sessions
    (pytest-xdist workers) never race for a "free" port.
    """
    command = [sys.executable, "-m", "batch_emulator", "serve", "--host", host, "--port", str(port or 0)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    emulator: EmulatorProcess | None = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if READY_LINE not in line:
            raise RuntimeError(f"batch emulator did not start (exit code {process.poll()}): {line!r}")
        emulator = EmulatorProcess(process, host, int(line.rsplit(":", 1)[1]))
        _wait_healthy(emulator.url, timeout)
        yield emulator
    finally:
        if emulator is not None:
            emulator.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()


def _wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}{CONTROL_PREFIX}health", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)
