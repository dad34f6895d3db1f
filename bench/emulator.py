"""Emulator throughput: array children run to SUCCEEDED per CPU-second of the emulator process, and memory per child.

    .venv/bin/python bench/emulator.py [--arrays 20] [--size 10000] [--compare-with REV]

A fresh emulator subprocess gets one unmanaged compute environment, one queue and one job definition, then
``--arrays`` arrays of ``--size`` children (every child RUNNING for 0.01 s) submitted at once; the benchmark waits
until every parent is SUCCEEDED. Printed: children, the emulator process's CPU seconds (user + system, from
/proc) and children per CPU-second, and its resident memory growth per child. With ``--compare-with REV`` the same
load also runs on the emulator of git revision REV (its ``batch_emulator/`` extracted to a temporary directory), in
the same run, alternately, and the ratio is printed. A benchmark, not a test: it prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    children: int
    cpu_seconds: float
    rss_bytes: int
    wall_seconds: float

    @property
    def per_cpu_second(self) -> float:
        return self.children / self.cpu_seconds

    @property
    def bytes_per_child(self) -> float:
        return self.rss_bytes / self.children


def _cpu_and_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of proc(5))
    return cpu, int(fields[21]) * PAGE  # rss (field 24)


def run_once(arrays: int, size: int, pythonpath: str | None, managed: int | None = None) -> Result:
    from batch_emulator.server import start_emulator

    saved, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    if pythonpath is not None:
        # ``python -m`` puts its working directory first on sys.path: run it where the other package is.
        os.environ["PYTHONPATH"] = pythonpath
        os.chdir(pythonpath)
    try:
        with start_emulator() as server:
            origin = subprocess.run(
                [sys.executable, "-c", "import batch_emulator; print(batch_emulator.__file__)"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert pythonpath is None or origin.startswith(pythonpath), origin
            return _load(server.url, server.process.pid, arrays, size, managed)
    finally:
        os.chdir(cwd)
        if pythonpath is not None:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved


def _load(url: str, pid: int, arrays: int, size: int, managed: int | None = None) -> Result:
    from batch_emulator.control import EmulatorControl

    def make(service: str) -> object:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto dummy credentials
        )

    batch = make("batch")
    EmulatorControl(url).set_durations(default=0.01, queue=0.001)
    role = make("iam").create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
    if managed is None:
        env = batch.create_compute_environment(  # type: ignore[attr-defined]
            computeEnvironmentName="bench", type="UNMANAGED", state="ENABLED", serviceRole=role
        )["computeEnvironmentArn"]
    else:
        # A Fargate environment of ``managed`` vCPUs (the account quota raised to match): every child waits its
        # turn for room, as on a real venue.
        ec2 = make("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]  # type: ignore[attr-defined]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]  # type: ignore[attr-defined]
        group = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc)["GroupId"]  # type: ignore[attr-defined]
        EmulatorControl(url).quota(fargate=managed)
        resources = {"type": "FARGATE", "maxvCpus": managed, "subnets": [subnet], "securityGroupIds": [group]}
        env = batch.create_compute_environment(  # type: ignore[attr-defined]
            computeEnvironmentName="bench",
            type="MANAGED",
            state="ENABLED",
            serviceRole=role,
            computeResources=resources,
        )["computeEnvironmentArn"]
    batch.create_job_queue(  # type: ignore[attr-defined]
        jobQueueName="bench",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )
    batch.register_job_definition(  # type: ignore[attr-defined]
        jobDefinitionName="bench",
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128, "command": ["true"]},
    )
    cpu0, rss0 = _cpu_and_rss(pid)
    wall0 = time.monotonic()
    ids = [
        batch.submit_job(jobName=f"bench-{i}", jobQueue="bench", jobDefinition="bench", arrayProperties={"size": size})[  # type: ignore[attr-defined]
            "jobId"
        ]
        for i in range(arrays)
    ]
    pending = set(ids)
    while pending:
        time.sleep(0.2)
        for chunk in [sorted(pending)[i : i + 100] for i in range(0, len(pending), 100)]:
            for job in batch.describe_jobs(jobs=chunk)["jobs"]:  # type: ignore[attr-defined]
                if job["status"] in ("SUCCEEDED", "FAILED"):
                    pending.discard(job["jobId"])
    cpu1, rss1 = _cpu_and_rss(pid)
    return Result(arrays * size, cpu1 - cpu0, max(0, rss1 - rss0), time.monotonic() - wall0)


def _extract(rev: str, directory: Path) -> str:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "batch_emulator"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return str(directory)


def _row(label: str, results: list[Result]) -> str:
    rate = statistics.median(r.per_cpu_second for r in results)
    memory = statistics.median(r.bytes_per_child for r in results)
    cpu = statistics.median(r.cpu_seconds for r in results)
    return f"{label:<22} {results[0].children:>10,} {cpu:>9.2f} {rate:>14,.0f} {memory:>10,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arrays", type=int, default=20)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each emulator (the median is shown)")
    parser.add_argument("--compare-with", metavar="REV", help="also run the emulator of this git revision")
    parser.add_argument(
        "--managed",
        type=int,
        metavar="VCPUS",
        help="only this tree: a managed Fargate environment of VCPUS vCPUs, so children wait for room",
    )
    args = parser.parse_args()
    mine: list[Result] = []
    theirs: list[Result] = []
    if args.managed is not None:
        limited = [run_once(args.arrays, args.size, None, args.managed) for _ in range(args.repeat)]
        print(f"{'emulator':<22} {'children':>10} {'CPU s':>9} {'children/CPU-s':>14} {'B/child':>10}")
        print(_row(f"managed, {args.managed} vCPUs", limited))
        return
    with tempfile.TemporaryDirectory() as tmp:
        other = _extract(args.compare_with, Path(tmp)) if args.compare_with else None
        for _ in range(args.repeat):
            if other is not None:
                theirs.append(run_once(args.arrays, args.size, other))
            mine.append(run_once(args.arrays, args.size, None))
    print(f"{'emulator':<22} {'children':>10} {'CPU s':>9} {'children/CPU-s':>14} {'B/child':>10}")
    print(_row("this tree", mine))
    if theirs:
        print(_row(str(args.compare_with), theirs))
        ratio = statistics.median(r.per_cpu_second for r in mine) / statistics.median(r.per_cpu_second for r in theirs)
        print(f"throughput ratio (this tree / {args.compare_with}): {ratio:.2f}")


if __name__ == "__main__":
    main()
