"""Fixtures of the operations tests: the tiny synthetic set and a real Ray head started with `ray start --head`
(token auth on, dashboard on 127.0.0.1, free ports, its own temp dir) that is always stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from tests.ops.helpers import (
    JobRun,
    MetricsScraper,
    local_head,
    ray_job,
    submit_train,
    submitter_env,
    tiny_overrides,
    token_mode,
    wait_for_status,
)

OPS_DIR = Path(__file__).parent
# the shared head while it runs: stopped after the last ops test (below), not at the end of the session
_RUNNING_HEADS: list = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared head as soon as the last ops test is done (after that test's module fixtures, which may
    still be connected to it). As a session fixture it would otherwise run until the end of the suite: its
    GCS, raylet, dashboard and agents took CPU from every later test on a 2-core machine for half the suite."""
    if _RUNNING_HEADS and (nextitem is None or OPS_DIR not in nextitem.path.parents):
        while _RUNNING_HEADS:
            _RUNNING_HEADS.pop().stop()


@pytest.fixture(scope="session")
def ops_data(tiny_synth) -> Path:
    return tiny_synth


@pytest.fixture(scope="session")
def head():
    """A head node of its own (2 CPUs), shared by the ops tests and stopped at the end whatever happens."""
    with local_head("reid-ops-") as node:
        _RUNNING_HEADS.append(node)
        yield node  # stopped by the last ops test already, or here


@pytest.fixture(scope="session")
def submitter(tmp_path_factory) -> dict[str, str]:
    """The environment of a job submitter who has the token only as RAY_AUTH_TOKEN."""
    return submitter_env(tmp_path_factory.mktemp("submitter-home"))


@pytest.fixture(scope="session")
def reference_job(head, submitter, ops_data, tmp_path_factory) -> JobRun:
    """The tiny 3-epoch run as a submitted job, Prometheus scraped while it runs. The resumed run and the
    run that loses a node and a worker process compare their final weights with this one."""
    storage = tmp_path_factory.mktemp("job-runs")
    job_id = "reid-reference"
    out = submit_train(submitter, head.dashboard_url, job_id, tiny_overrides(ops_data, storage, "reference"),
                       wait=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    with MetricsScraper(head.metrics_url) as scraper:
        status = wait_for_status(submitter, head.dashboard_url, job_id, {"SUCCEEDED", "FAILED", "STOPPED"}, 900)
    logs = ray_job(submitter, head.dashboard_url, "logs", job_id).stdout
    changes = [(round(t), sorted(names)) for i, (t, names) in enumerate(scraper.timeline)
               if i == 0 or names != scraper.timeline[i - 1][1]]
    print(f"metrics timeline of {job_id}: {changes}")
    return JobRun(job_id, storage / "reference", status, logs, scraper.seen)


@pytest.fixture(scope="module")
def driver(head):
    """This process as a driver of the head node (token mode, as every client of it needs)."""
    with token_mode():
        ray.init(address=head.gcs_address, log_to_driver=False)
        try:
            yield head
        finally:
            ray.shutdown()
