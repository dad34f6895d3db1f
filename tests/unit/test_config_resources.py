"""What modules need from the venue: compute kinds, secrets, buckets and the mount layout, each validated with file,
line and key before anything is synthesized or submitted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from yaml_files import problems, write

from confluence_runtime.config import Mount, load_config
from confluence_runtime.planning.plan import build_plan, plan_to_dict
from confluence_runtime.views.render import plan_table

RUN = "20261126T010000-abcd"


MIXED = """
    defaults: {compute: fargate}
    stages:
      input:
        input: {array_size: 4, compute: fargate_spot}
      flpe:
        momma: {array_size: 4, compute: ec2_spot, vcpus: 2, memory: 4096}
        sad: {array_size: 4, compute: ec2}
        hivdi: {array_size: 4}
    """


def test_each_compute_kind_gets_queues_of_its_own(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MIXED))
    queues = {m.name: (m.compute, m.job_queue, m.job_definition) for m in config.modules}
    assert queues == {
        "input": ("fargate_spot", "confluence-dev-input", "confluence-dev-input"),
        "momma": ("ec2_spot", "confluence-dev-flpe-ec2-spot", "confluence-dev-momma"),
        "sad": ("ec2", "confluence-dev-flpe-ec2", "confluence-dev-sad"),
        "hivdi": ("fargate", "confluence-dev-flpe-fargate", "confluence-dev-hivdi"),  # from defaults
    }
    assert config.queue_compute["confluence-dev-flpe-ec2-spot"] == "ec2_spot"
    assert config.barrier_job_definitions == ("confluence-dev-barrier", "confluence-dev-barrier-ec2")


def test_shared_queue_mode_splits_by_compute(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "queue_mode: shared\n" + textwrap.dedent(MIXED)), venue="ops")
    assert config.job_queues == (
        "confluence-ops-jobs", "confluence-ops-jobs-ec2-spot", "confluence-ops-jobs-ec2", "confluence-ops-jobs-fargate"
    )  # fmt: skip


def test_runtime_submits_each_module_to_the_queue_of_its_platform(tmp_path: Path) -> None:
    # GIVEN a stage whose first module runs on EC2 Spot and that waits for more than 20 jobs (so it needs barriers)
    path = write(
        tmp_path,
        """
        stages:
          input:
            input: {num_jobs: 21}
          flpe:
            momma: {array_size: 4, compute: ec2_spot}
            hivdi: {array_size: 4}
        """,
    )
    plan = build_plan(load_config(path), RUN)
    by_name = {s["name"]: s for s in plan_to_dict(plan)["submissions"]}
    momma = by_name[f"{RUN}_flpe_momma_0"]
    assert (momma["job_queue"], momma["job_definition"], momma["compute"]) == (
        "confluence-dev-flpe-ec2-spot", "confluence-dev-momma", "ec2_spot"
    )  # fmt: skip
    hivdi = by_name[f"{RUN}_flpe_hivdi_0"]
    assert (hivdi["job_queue"], hivdi["compute"]) == ("confluence-dev-flpe", "fargate_spot")
    # THEN the barrier runs in the EC2 queue with the EC2 barrier definition (a Fargate one could not run there)
    barrier = by_name[f"{RUN}_flpe_barrier-0"]
    assert (barrier["job_queue"], barrier["job_definition"]) == (
        "confluence-dev-flpe-ec2-spot", "confluence-dev-barrier-ec2"
    )  # fmt: skip
    assert plan.submissions[0].request({})["jobQueue"] == "confluence-dev-input"


def test_plan_table_shows_compute_only_when_it_varies(tmp_path: Path) -> None:
    # (and fits seven columns of the shipped workflow's names in 120 columns: test_plan_names_are_never_cut)
    from rich.console import Console

    def render(text: str) -> str:
        console = Console(width=200, record=True)
        console.print(plan_table(build_plan(load_config(write(tmp_path, text)), RUN)))
        return console.export_text()

    mixed = render(MIXED)
    assert "flpe  momma     1     4 input     flpe-ec2-spot ec2_spot    " in mixed
    assert "      sad       1     4 input     flpe-ec2      ec2         " in mixed
    assert "      hivdi     1     4 input     flpe-fargate  fargate     " in mixed
    # names that only repeat the module's are said once, under the table, not in a column
    assert "definition" not in next(line for line in mixed.splitlines() if line.startswith("stage "))
    assert "job definitions confluence-dev-MODULE" in mixed
    plain = render("stages: {a: {m: {}}}\n")
    assert "compute" not in next(line for line in plain.splitlines() if line.startswith("stage "))
    assert "every module runs on fargate_spot" in " ".join(plain.split())  # the caption wraps to the table


def test_secrets_buckets_and_sub_directory_mounts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        infrastructure: {buckets: true, ec2_instance_classes: [m6i, c7i.2xlarge], ec2_max_vcpus: 1024}
        stages:
          input:
            input:
              secrets: {HYDROCRON_API_KEY: hydrocron-api-key}
              buckets: {json: rw, sos: ro}
              mounts: {input: /mnt/data/input, coastalq: /mnt/data/coastalq}
          flpe:
            momma:
              mounts: {"flpe/momma": /mnt/data/output, "input": "/mnt/data/input:ro", "coastalq/q1/x": "/q:ro"}
        """,
    )
    config = load_config(path, venue="dev2")
    input_, momma = config.modules
    assert input_.secrets == (("HYDROCRON_API_KEY", "hydrocron-api-key"),)
    assert input_.buckets == (("json", "rw"), ("sos", "ro"))
    assert momma.mounts == (
        Mount("flpe", "/mnt/data/output", subdirectory="momma"),
        Mount("input", "/mnt/data/input", read_only=True),
        Mount("coastalq", "/q", read_only=True, subdirectory="q1/x"),
    )
    assert config.areas == ("input", "coastalq", "flpe")
    assert config.mount_roots == ("/input", "/coastalq", "/flpe/momma", "/coastalq/q1/x")
    assert config.secrets == ("/confluence-dev2/hydrocron-api-key",)
    assert config.infrastructure.ec2_instance_classes == ("m6i", "c7i.2xlarge")
    assert config.infrastructure.ec2_max_vcpus == 1024
    # defaults: the Terraform deployment's instance families and six more, so that Spot has deep pools
    assert load_config(write(tmp_path, "stages: {a: {m: {}}}\n")).infrastructure.ec2_instance_classes == (
        "m6i", "m6a", "m5", "c6i", "c6a", "c5", "r6i", "r6a", "r5"
    )  # fmt: skip


BAD = [
    pytest.param(
        """
        stages:
          a:
            m: {compute: lambda}
        """,
        ["3: stages.a.m.compute: expected fargate_spot or fargate or ec2_spot or ec2, got 'lambda' (str)"],
        id="unknown-compute",
    ),
    pytest.param(
        """
        stages:
          a:
            m:
              secrets:
                API_KEY: "hydro cron"
                1BAD: x
                AWS_BATCH_X: x
                TOKEN: "/abs/name"
                LOGIN: lpdaac-secret
                EARTHDATA: earthdata-login
        """,
        [
            "5: stages.a.m.secrets.API_KEY: secret name 'hydro cron' is not one Secrets Manager accepts (ASCII "
            "letters, digits and /_+=.@-, not starting with '/': the venue's /{prefix}/ comes first)",
            "6: stages.a.m.secrets.1BAD: is not an environment variable name (letters, digits and '_', not first "
            "a digit)",
            "7: stages.a.m.secrets.AWS_BATCH_X: AWS_BATCH_X is reserved (AWS_BATCH*, CONFLUENCE_* and the "
            "S3_CREDS_* variables)",
            "8: stages.a.m.secrets.TOKEN: secret name '/abs/name' is not one Secrets Manager accepts (ASCII "
            "letters, digits and /_+=.@-, not starting with '/': the venue's /{prefix}/ comes first)",
            "9: stages.a.m.secrets.LOGIN: secret name 'lpdaac-secret' ends with a hyphen and six characters, which "
            "Secrets Manager advises against (its ARNs end that way); rename it",
            "4: stages.a.m.secrets.EARTHDATA: /confluence-dev/earthdata-login is the renew stack's Earthdata "
            "login; use s3_credentials: true for PO.DAAC credentials, or another name",
        ],
        id="secret-names",
    ),
    pytest.param(
        """
        stages:
          a:
            m: {buckets: {json: write}}
            n: {buckets: {logs: ro}}
        """,
        [
            "3: stages.a.m.buckets: expected a mapping of venue buckets (sos, json, config) to ro or rw, got a "
            "mapping (json: write)",
            "4: stages.a.n.buckets: expected a mapping of venue buckets (sos, json, config) to ro or rw, got a "
            "mapping (logs: ro)",
        ],
        id="bucket-modes",
    ),
    pytest.param(
        """
        infrastructure: {buckets: false}
        stages:
          a:
            m: {buckets: {json: rw}}
        """,
        ["4: stages.a.m.buckets: the venue has no buckets (infrastructure.buckets is false)"],
        id="buckets-switched-off",
    ),
    pytest.param(
        """
        stages:
          a:
            m: {mounts: {input: /mnt/in}}
          b:
            n: {mounts: {input: "/mnt/in:ro", "flpe/momma": "/mnt/out:ro", "flpe/../x": /x, coastalq: relative}}
        """,
        [
            "5: stages.b.n.mounts.flpe/../x: sub-directory '../x' of area 'flpe' must be names of letters, digits, "
            "'.', '-' or '_' separated by single '/' (no '.' or '..')",
            "5: stages.b.n.mounts.coastalq: expected an absolute path in the container, optionally ending in :ro (read-only), got 'relative' (str)",
            "5: stages.b.n.mounts.flpe/momma: area 'flpe' is mounted read-only and no module writes it (mount it "
            "without :ro in the module that fills it)",
        ],
        id="mounts",
    ),
    pytest.param(
        """
        stages:
          a:
            m: {compute: ec2_spot, job_queue: "{prefix}-shared"}
            n: {job_queue: "{prefix}-shared", job_definition: "{prefix}-m"}
        """,
        [
            "4: stages.a.n.compute: fargate_spot (FARGATE) shares job queue 'confluence-dev-shared' with stages.a.m "
            "(ec2_spot, EC2); a queue holds EC2 or Fargate compute environments, never both, in one order: set a "
            "job_queue of its own",
            "4: stages.a.n.compute: fargate_spot (FARGATE) shares job definition 'confluence-dev-m' with stages.a.m "
            "(ec2_spot, EC2); a job definition is built for one platform: set a job_definition of its own",
        ],
        id="queue-serves-one-platform",
    ),
    pytest.param(
        """
        infrastructure: {ec2_instance_classes: [m6i, "M5 large"], ec2_max_vcpus: 0}
        stages: {a: {m: {}}}
        """,
        [
            "1: infrastructure.ec2_instance_classes: expected a list of EC2 instance families (m6i), types "
            '(m6i.xlarge) or "optimal", got a list (not an instance class: M5 large)',
            "1: infrastructure.ec2_max_vcpus: expected a positive whole number, got 0 (int)",
        ],
        id="instance-classes",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_values_fail_with_file_line_and_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_plan_names_are_never_cut_at_120_columns() -> None:
    from rich.console import Console

    console = Console(width=120, record=True)
    plan = build_plan(load_config(Path(__file__).resolve().parents[2] / "confluence.yaml"), RUN)
    console.print(plan_table(plan))
    shown = console.export_text()
    assert "…" not in shown
    modules = {s.module for s in plan.submissions}
    assert "postdiagnostics_flpe" in modules
    rows = [line.split() for line in shown.splitlines()]
    assert modules <= {word for row in rows for word in row}


def test_the_shipped_plan_fits_80_columns_without_folding_a_name() -> None:
    from rich.console import Console

    console = Console(width=80, record=True)
    plan = build_plan(load_config(Path(__file__).resolve().parents[2] / "confluence.yaml"), RUN)
    console.print(plan_table(plan))
    rows = console.export_text().splitlines()
    table = rows[: next(i for i, line in enumerate(rows) if line.lstrip().startswith("queues are"))]
    assert max(len(line) for line in table) <= 80 and "…" not in "\n".join(table)
    # every row holds its stage and module whole: one line per module, none folded onto a second
    body = [line.split() for line in table if line and not line.startswith(("stage ", "─", " ", "Confluence"))]
    assert {words[0] for words in body} >= {s.stage for s in plan.submissions if s.stage != "flpe"}
