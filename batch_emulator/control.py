"""EmulatorControl: a small urllib client for the emulator's ``/_emulator/`` control API (no boto3 needed)."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


class ControlError(OSError):
    """The emulator refused a control request; the message is the emulator's own explanation."""


class EmulatorControl:
    """Steers one emulator server: reset, timing, failure injection, throttling, retention, event delivery
    faults, call counters. ``python -m batch_emulator`` is the same thing from a shell."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _post(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(dict(body or {})).encode()
        request = urllib.request.Request(  # noqa: S310 - http URL of our own server
            f"{self.url}{path}", data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error") or str(error)
            except ValueError:
                message = str(error)
            raise ControlError(f"HTTP {error.code}: {message}") from error
        return json.loads(raw) if raw else {}

    def reset(self) -> None:
        """moto's own reset (every service's state) plus the emulator's settings, failures, retention, event
        faults and counters."""
        self._post("/moto-api/reset")
        self._post("/_emulator/reset")

    def set_durations(
        self,
        default: float | None = None,
        by_definition: Mapping[str, float] | None = None,
        by_name: Mapping[str, float] | None = None,
        by_run: Mapping[str, float] | None = None,
        queue: float | None = None,
        min_timeout: int | None = None,
        time_limit_scale: float | None = None,
    ) -> None:
        """Seconds each attempt stays RUNNING. Applied when a job is submitted; precedence by_run (tag
        ``confluence:run``) > by_name (glob on jobName) > by_definition (job definition name) > default.
        ``queue`` is the time spent in each of SUBMITTED, RUNNABLE and STARTING. ``min_timeout`` lowers the
        smallest attemptDurationSeconds SubmitJob accepts (AWS: 60), for tests that want a timeout to fire.
        ``time_limit_scale``: seconds of the job clock per second of a queue's jobStateTimeLimitActions
        ``maxTimeSeconds`` (AWS allows 600 at least; 0.001 fires a 600 s action after 0.6 s)."""
        self._post(
            "/_emulator/durations",
            {
                "default": default,
                "queue": queue,
                "by_definition": dict(by_definition or {}),
                "by_name": dict(by_name or {}),
                "by_run": dict(by_run or {}),
                "min_timeout": min_timeout,
                "time_limit_scale": time_limit_scale,
            },
        )

    def retention(self, seconds: float | None) -> None:
        """Forget finished jobs ``seconds`` after they finished (DescribeJobs omits them, ListJobs skips them,
        dependencies on them are refused), as AWS eventually does; None keeps them for ever."""
        self._post("/_emulator/retention", {"seconds": seconds})

    def events(
        self,
        duplicates: float = 0.0,
        reorder_window: int = 1,
        seed: int = 0,
        enabled: bool = True,
        drop: float = 0.0,
        tags: bool = True,
    ) -> None:
        """Batch Job State Change events go to moto's EventBridge (default bus) whenever a rule exists there.
        ``duplicates``: share of events delivered twice; ``reorder_window`` N > 1: events are released N at a
        time in a seeded random order (at most 0.3 s late); ``drop``: seeded share of events never delivered;
        ``tags=False``: events carry no job tags (AWS documents none). ``enabled=False`` publishes nothing."""
        self._post(
            "/_emulator/events",
            {
                "duplicates": duplicates,
                "reorder_window": reorder_window,
                "seed": seed,
                "enabled": enabled,
                "drop": drop,
                "tags": tags,
            },
        )

    def quota(self, fargate: float | None = None, fargate_spot: float | None = None) -> dict[str, float]:
        """The account's Fargate vCPU quotas (On-Demand ``L-3032A538``, Spot ``L-36FBB829``; 6 each for a new
        account, the default): running Fargate jobs never hold more. Returns the quotas now in force."""
        return self._post("/_emulator/quota", {"fargate": fargate, "fargate_spot": fargate_spot})

    def spot_reclaim(
        self,
        name_glob: str = "*",
        indices: Iterable[int] | None = None,
        share: float | None = None,
        seed: int = 0,
        times: int | None = None,
    ) -> None:
        """Reclaim the Spot capacity under matching attempts halfway through (only attempts placed on a SPOT or
        FARGATE_SPOT compute environment): the attempt fails with AWS's reason, "Your Spot Task was interrupted."
        on Fargate Spot, "Host EC2 (instance i-...) terminated." on EC2 Spot, and the retry strategy decides.
        ``share``: a seeded share of the matching attempts (drawn per attempt); ``indices``: array children."""
        self._fault("spot", name_glob, indices, share, seed, times)

    def oom(
        self,
        name_glob: str = "*",
        indices: Iterable[int] | None = None,
        share: float | None = None,
        seed: int = 0,
        times: int | None = None,
    ) -> None:
        """Kill matching attempts for running out of memory halfway through, as ECS reports it: exit code 137,
        container reason "OutOfMemoryError: Container killed due to memory usage"; the retry strategy decides."""
        self._fault("oom", name_glob, indices, share, seed, times)

    def _fault(
        self,
        kind: str,
        name_glob: str,
        indices: Iterable[int] | None,
        share: float | None,
        seed: int,
        times: int | None,
    ) -> None:
        """One injected fault of ``kind`` (spot, oom) on the matching attempts (see :meth:`spot_reclaim`)."""
        self._post(
            "/_emulator/fail",
            {
                "kind": kind,
                "name_glob": name_glob,
                "indices": list(indices) if indices is not None else None,
                "share": share,
                "seed": seed,
                "times": times,
            },
        )

    def fail(
        self,
        name_glob: str,
        indices: Iterable[int] | None = None,
        share: float | None = None,
        exit_code: int = 1,
        reason: str | None = None,
        seed: int = 0,
        times: int | None = None,
        log: Iterable[str] = (),
    ) -> None:
        """Make attempts of matching jobs fail: the given array indices (plain jobs: ``indices=None``), a seeded
        ``share`` of them, or all. ``reason`` (e.g. ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY``) fails like the
        host did, with no exit code; otherwise the container exits with ``exit_code``. ``times`` limits the
        failure to the first N attempts so a retryStrategy can recover. ``log`` lines end the failed attempt's
        log stream (its error message). Rules apply to attempts that start after the call."""
        self._post(
            "/_emulator/fail",
            {
                "name_glob": name_glob,
                "indices": list(indices) if indices is not None else None,
                "share": share,
                "exit_code": exit_code,
                "reason": reason,
                "seed": seed,
                "times": times,
                "log": list(log),
            },
        )

    def throttle(
        self,
        share: float = 0.0,
        status: int = 429,
        operations: Iterable[str] | None = None,
        submit_rate: float | None = None,
        seed: int = 0,
    ) -> None:
        """Answer a ``share`` of Batch calls (only ``operations``, e.g. ["SubmitJob"], if given) with HTTP
        ``status`` (429 TooManyRequestsException or 500 ServerException), and/or cap SubmitJob at
        ``submit_rate`` requests per second (429 beyond). Replaces the previous throttle settings."""
        self._post(
            "/_emulator/throttle",
            {
                "share": share,
                "status": status,
                "operations": list(operations) if operations else None,
                "submit_rate": submit_rate,
                "seed": seed,
            },
        )

    def stub_lambda(self, function_name: str, response: Any) -> None:
        """Every synchronous Invoke of ``function_name`` (which must exist) answers ``response`` as JSON, in place
        of code moto cannot run without Docker; ``None`` removes the stub."""
        self._post("/_emulator/lambda", {"function": function_name, "response": response})

    def push_image(
        self, repository: str, tag: str, content: str = "", *, account: str | None = None, region: str = "us-west-2"
    ) -> str:
        """Tag an image in the emulator's ECR (created if needed): the same ``content`` always has the same
        ``sha256:`` digest, other content moves the tag to another digest (a re-tag). Returns the digest."""
        body = {"repository": repository, "tag": tag, "content": content, "account": account, "region": region}
        return str(self._post("/_emulator/image", body)["digest"])

    def counters(self) -> dict[str, dict[str, int]]:
        """``{"calls": {"SubmitJob": n, ...}, "injected": {...}, "effects": {"events_published": n, ...}}`` since
        the last reset (injected calls count as calls too)."""
        with urllib.request.urlopen(f"{self.url}/_emulator/counters", timeout=self.timeout) as response:  # noqa: S310
            return json.loads(response.read())

    def hold(self, state: str, job_id: str | None = None, name_glob: str | None = None) -> int:
        """Keep matching jobs in ``state`` (SUBMITTED, PENDING, RUNNABLE, STARTING or RUNNING) until released,
        whatever the clock says; returns the hold's id. Exactly one of ``job_id`` (a plain job, an array parent
        -- every child --, or a ``parent:index`` child) and ``name_glob`` (fnmatch on jobName). Jobs already in
        ``state`` stay there too; jobs submitted later are held when they get there. CancelJob/TerminateJob
        still end a held job."""
        return int(self._post("/_emulator/hold", {"state": state, "job_id": job_id, "name_glob": name_glob})["hold_id"])

    def release(self, *hold_ids: int) -> list[dict[str, Any]]:
        """Drop the given holds (none given: every hold); what they held moves on from now. Returns the holds
        released."""
        body = {"hold_ids": list(hold_ids) if hold_ids else None}
        return list(self._post("/_emulator/release", body)["released"])

    def holds(self) -> list[dict[str, Any]]:
        """``[{"hold_id", "state", "job_id", "name_glob", "held": [job ids stopped by it now]}]``."""
        return list(self._post("/_emulator/holds")["holds"])

    @contextlib.contextmanager
    def held(self, state: str, job_id: str | None = None, name_glob: str | None = None) -> Iterator[int]:
        """``with control.held("RUNNING", name_glob="run1_*"):`` holds for the block, releases after it."""
        hold_id = self.hold(state, job_id=job_id, name_glob=name_glob)
        try:
            yield hold_id
        finally:
            self.release(hold_id)

    def pause(self) -> None:
        """Freeze the job clock: no state changes until resume()."""
        self._post("/_emulator/pause")

    def resume(self) -> None:
        self._post("/_emulator/resume")
