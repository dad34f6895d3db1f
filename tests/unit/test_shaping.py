"""Job shaping, through its three callers (the plan, the supervisor, retry-failed): every submission a caller makes
of a module's children covers exactly the children asked for, each once, and stays within AWS's limits: an array
of 2 to 10,000 children ("The array size can be between 2 and 10,000"), container overrides within 8,192
characters, job names within 128 characters. Each child's index is read back from the environment it is
submitted with, as a module does (``CONFLUENCE_INDEX_MAP``, ``CONFLUENCE_INDEX``, or the offset)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from confluence_runtime import names
from confluence_runtime.apply.rerun import compact_retries
from confluence_runtime.config import load_config
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.planning.shaping import MAX_OVERRIDE_CHARS, Submission
from confluence_runtime.records.document import RunSpec, children_of
from confluence_runtime.supervision.decisions import module_pieces, submission

RUN = "20261201T000000-shap"
CONFIG = """\
prefix: p
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
stages:
  s:
    m:
      num_jobs: {num_jobs}
      array_size: {array_size}
      items_per_child: {per_child}
      arguments: ["{arg}"]
      environment: {{PAD: "{pad}"}}
"""


def module_config(array_size: int, num_jobs: int, per_child: int, pad: int) -> Path:
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "confluence.yaml"
    path.write_text(
        CONFIG.format(tmp=tmp, num_jobs=num_jobs, array_size=array_size, per_child=per_child, arg="a", pad="x" * pad)
    )
    return path


def children_told(submission: Submission) -> list[int]:
    """The module's child index each container of the submission works on, read from its environment."""
    env = dict(submission.environment)
    if env.get(names.ENV_INDEX_MAP):
        told = names.decode_index_map(env[names.ENV_INDEX_MAP])
        assert len(told) == submission.containers
        return told
    if env.get(names.ENV_INDEX):
        assert submission.containers == 1
        return [int(env[names.ENV_INDEX])]
    offset = int(env[names.ENV_ARRAY_OFFSET])
    return list(range(offset, offset + submission.containers))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), unique=True).map(sorted))
def test_an_index_map_reads_back_as_the_indices_it_was_written_from(indices: list[int]) -> None:
    text = names.encode_index_map(indices)
    assert (names.decode_index_map(text) if indices else []) == indices
    # a range only where it is shorter than listing: three or more in a row
    assert all(int(t.split("-")[1]) - int(t.split("-")[0]) >= 2 for t in text.split(",") if "-" in t)
    # as a document reads it back: the same indices, counted from its runs, written back as it was
    stored = names.IndexMap(text)
    assert len(stored) == len(indices) and bool(stored) == bool(indices)
    assert stored == tuple(indices) and tuple(indices) == stored and list(stored) == indices
    assert names.encode_index_map(stored) == text and hash(stored) == hash(tuple(indices))


def test_index_maps_write_runs_as_ranges() -> None:
    assert names.encode_index_map([*range(212), *range(213, 4098)]) == "0-211,213-4097"
    assert names.encode_index_map([0, 2, 3, 5, 6, 7]) == "0,2,3,5-7"
    assert names.decode_index_map("0,2,3,5-7") == [0, 2, 3, 5, 6, 7]


def assert_within_limits(submission: Submission) -> None:
    request = submission.request({})
    size = request.get("arrayProperties", {}).get("size")
    assert size is None or 2 <= size <= 10_000
    overrides = json.dumps(request.get("containerOverrides", {}), separators=(",", ":"))
    assert len(overrides) <= MAX_OVERRIDE_CHARS
    assert len(submission.name) <= 128


def assert_exactly(submissions: list[Submission], children: list[int], num_jobs: int) -> None:
    """Each job of the module runs each child in ``children`` once, and nothing else."""
    for job in range(num_jobs):
        ran = Counter(c for s in submissions if s.job_index == job for c in children_told(s))
        assert sorted(ran) == sorted(children) and set(ran.values()) <= {1}
    for s in submissions:
        assert_within_limits(s)


sizes = st.one_of(st.integers(2, 40), st.integers(2, 35_000))
pads = st.sampled_from([0, 10, 3000, 6000])


@settings(max_examples=40, deadline=None)
@given(array_size=sizes, num_jobs=st.integers(1, 3), per_child=st.integers(1, 4), pad=pads)
def test_the_plan_runs_every_child_of_a_module_once(array_size: int, num_jobs: int, per_child: int, pad: int) -> None:
    config = load_config(module_config(array_size, num_jobs, per_child, pad))
    module = config.modules[0]
    plan = build_plan(config, RUN)
    assert_exactly(list(plan.submissions), list(range(module.children)), num_jobs)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    array_size=sizes,
    num_jobs=st.integers(1, 3),
    per_child=st.integers(1, 4),
    pad=pads,
)
def test_the_supervisor_runs_every_child_not_lost_upstream_once(
    data: st.DataObject, array_size: int, num_jobs: int, per_child: int, pad: int
) -> None:
    config = load_config(module_config(array_size, num_jobs, per_child, pad))
    run = RunSpec.from_config(config, RUN)
    module = run.stages[0].modules[0]
    children = children_of(module, array_size)
    lost = data.draw(
        st.one_of(
            st.sets(st.integers(0, children - 1), max_size=children // 2),
            st.tuples(st.integers(0, children - 1), st.integers(0, 12_000)).map(
                lambda t: set(range(t[0], min(t[0] + t[1], children))) | set(range(0, children, 3))
            ),
        ),
        label="children lost upstream",
    )
    pieces = module_pieces(module, RUN, children, lost)
    submissions = [submission(module, piece, run, array_size) for piece in pieces]
    assert_exactly(submissions, [c for c in range(children) if c not in lost], num_jobs)
    for piece, sub in zip(pieces, submissions, strict=True):
        assert children_told(sub) == [piece.global_index(i if piece.count > 1 else None) for i in range(piece.count)]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), array_size=sizes, per_child=st.integers(1, 4), pad=pads)
def test_retry_failed_runs_every_failed_child_once(
    data: st.DataObject, array_size: int, per_child: int, pad: int
) -> None:
    plan = build_plan(load_config(module_config(array_size, 1, per_child, pad)), RUN)
    children = sum(s.containers for s in plan.submissions)
    failed = sorted(
        data.draw(
            st.one_of(
                st.sets(st.integers(0, children - 1), min_size=1, max_size=50),
                st.tuples(st.integers(0, children - 1), st.integers(1, 5000)).map(
                    lambda t: set(range(t[0], min(t[0] + t[1], children)))
                ),
            ),
            label="failed children",
        )
    )
    created: list[Submission] = []
    compact_retries(plan, list(plan.submissions), failed, 1, (), created.append)
    assert_exactly(created, failed, 1)
