"""jobs/submit.py builds the `ray job submit` command of each job kind (no cluster needed)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from jobs.submit import (
    DRIVER_RESOURCE,
    IMAGE_PYTHON,
    JOBS,
    PROJECT_ROOT,
    RUNTIME_ENV_DIR,
    build_command,
    check_paths,
    main,
)
from reid.errors import ReidError
from tests.ports import free_port


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


@pytest.mark.parametrize("kind, args", [
    ("train", ["baseline", "ray.storage_path=/shared/runs", "data.root=/shared/data/x", "ray.num_workers=2"]),
    ("evaluate", ["/shared/runs/baseline-default-synthetic-s0", "eval.rerank=true"]),
    ("tune", ["search", "adfta", "--space", "adfta", "--trials", "4", "--out", "/shared/tune"]),
    ("prepare", ["mars", "--root", "/shared/raw/MARS", "--out", "/shared/prepared/mars"]),
    ("pose", ["--manifest", "/shared/prepared/prid", "--out", "/shared/prepared/prid/pose", "--workers", "2"]),
])
def test_every_kind_submits_the_project_interpreter_with_its_runtime_env_and_resources(kind, args):
    cmd = build_command(kind, args, address="http://127.0.0.1:8265", python=IMAGE_PYTHON, submission_id="x1")
    assert cmd[1:3] == ["job", "submit"]
    assert _flag(cmd, "--address") == "http://127.0.0.1:8265"
    assert _flag(cmd, "--runtime-env") == str(RUNTIME_ENV_DIR / f"{kind}.yaml")
    assert _flag(cmd, "--working-dir") == str(PROJECT_ROOT)
    assert float(_flag(cmd, "--entrypoint-num-cpus")) == JOBS[kind].num_cpus
    assert _flag(cmd, "--submission-id") == "x1"
    entry = cmd[cmd.index("--") + 1:]
    assert entry[:4] == [IMAGE_PYTHON, "-m", "reid.cli", JOBS[kind].command] and entry[4:] == args


def test_gpus_for_the_driver_on_request():
    cmd = build_command("evaluate", ["/shared/run", "--backend", "local"], address="http://h:8265", python="py",
                        num_gpus=1)
    assert _flag(cmd, "--entrypoint-num-gpus") == "1"
    assert "--entrypoint-num-gpus" not in build_command("evaluate", ["/shared/run"], address="a", python="py")


@pytest.mark.parametrize("kind, args, bad", [
    ("train", ["baseline", "ray.storage_path=runs"], "ray.storage_path=runs"),
    ("train", ["baseline", "ray.storage_path=/s", "data.root=data/mars"], "data.root=data/mars"),
    ("train", ["--resume", "runs/x"], "--resume runs/x"),
    ("train", ["baseline", "ray.storage_path=/s", "--audit-log", "audit.jsonl"], "--audit-log audit.jsonl"),
    ("evaluate", ["runs/x"], "runs/x"),
    ("tune", ["search", "adfta", "--out=runs/tune"], "--out runs/tune"),
    ("prepare", ["mars", "--root", "raw/MARS", "--out", "/p"], "--root raw/MARS"),
    ("pose", ["--manifest", "/m", "--out", "pose"], "--out pose"),
])
def test_relative_paths_are_refused_with_the_reason(kind, args, bad):
    with pytest.raises(ReidError, match="temporary copy of the working directory") as err:
        check_paths(kind, args)
    assert bad in str(err.value)


def test_sweeps_must_name_their_output():
    with pytest.raises(ReidError, match="pass --out /shared/path"):
        check_paths("tune", ["search", "adfta", "--space", "adfta", "--trials", "4"])
    check_paths("tune", ["ablation", "adfta-table4", "--out=/shared/ablations"])
    check_paths("tune", ["list"])


def test_training_jobs_must_name_their_storage():
    with pytest.raises(ReidError, match="pass ray.storage_path=/shared/path"):
        check_paths("train", ["baseline", "data.root=/shared/data"])
    check_paths("train", ["baseline", "ray.storage_path=s3://bucket/runs"])  # URIs are fine
    check_paths("train", ["--resume", "/shared/runs/baseline-default-synthetic-s0"])  # the run dir names it


def test_dry_run_prints_the_command_and_errors_exit_2(capsys):
    assert main(["train", "--dry-run", "--address", "http://127.0.0.1:9", "--python", "/p/python", "--",
                 "baseline", "ray.storage_path=/shared/runs"]) == 0
    printed = capsys.readouterr().out
    assert "job submit --address http://127.0.0.1:9" in printed and "-- /p/python -m reid.cli train baseline" in printed
    assert main(["train", "--dry-run", "--", "baseline"]) == 2
    assert "ray.storage_path" in capsys.readouterr().err


def test_unknown_kind_is_an_error():
    with pytest.raises(ReidError, match="unknown job kind"):
        build_command("serve", [], address="a", python="p")


@pytest.mark.parametrize("kind", sorted(JOBS))
def test_long_lived_drivers_are_pinned_to_the_head_and_the_rest_take_cpus(kind):
    """train / tune / pose drivers host the Train controller or the Tune loop: a `reid_driver` slot (only heads
    advertise it) and no CPU, so a spot worker's reclaim cannot kill the job. evaluate / prepare need CPUs."""
    args = {"train": ["baseline", "ray.storage_path=/s"], "evaluate": ["/s/run"], "tune": ["list"],
            "prepare": ["mars", "--root", "/r", "--out", "/o"], "pose": ["--manifest", "/m", "--out", "/o"]}[kind]
    cmd = build_command(kind, args, address="a", python="py")
    if kind in ("train", "tune", "pose"):
        assert json.loads(_flag(cmd, "--entrypoint-resources")) == {DRIVER_RESOURCE: 1}
        assert float(_flag(cmd, "--entrypoint-num-cpus")) == 0
        loose = build_command(kind, args, address="a", python="py", pin=False)
        assert "--entrypoint-resources" not in loose and float(_flag(loose, "--entrypoint-num-cpus")) > 0
    else:
        assert "--entrypoint-resources" not in cmd and float(_flag(cmd, "--entrypoint-num-cpus")) >= 1


def test_the_default_interpreter_is_the_images_not_the_submitters(capsys, monkeypatch):
    monkeypatch.delenv("REID_JOB_PYTHON", raising=False)
    assert main(["train", "--dry-run", "--", "baseline", "ray.storage_path=/shared/runs"]) == 0
    printed = capsys.readouterr().out
    assert f"-- {IMAGE_PYTHON} -m reid.cli train" in printed and sys.executable not in printed
    assert main(["train", "--dry-run", "--driver-anywhere", "--", "baseline", "ray.storage_path=/s"]) == 0
    assert "--entrypoint-resources" not in capsys.readouterr().out


def test_local_heads_advertise_the_driver_resource():
    from jobs.local_cluster import LocalHead

    flags = [a for a in LocalHead().args() if a.startswith("--resources=")]
    assert len(flags) == 1 and json.loads(flags[0].split("=", 1)[1]) == {DRIVER_RESOURCE: 100}
    from tune.runner import DRIVER_RESOURCE as tune_name

    assert tune_name == DRIVER_RESOURCE


def test_an_address_where_no_jobs_api_answers_is_one_line_not_rays_traceback(capsys, monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("ray job submit run for a dead address"))
    address = f"http://127.0.0.1:{free_port()}"
    assert main(["train", "--address", address, "--", "baseline", "ray.storage_path=/shared/runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"jobs.submit: error: no Ray Jobs API answers at {address} (Connection refused)")
    assert err.count("\n") == 1 and "kubectl port-forward svc/reid-head-svc 8265:8265" in err


@pytest.mark.parametrize("status", [200, 401])
def test_an_answering_jobs_api_goes_on_to_ray_job_submit(monkeypatch, status):
    """Any HTTP answer means a server is there (a 401: token auth, which `ray job submit` explains itself)."""
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b'{"version": "x"}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ran = []
    class Submitted:
        def __init__(self, cmd, env):
            ran.append(cmd)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Submitted)
    try:
        address = f"http://127.0.0.1:{server.server_port}"
        assert main(["train", "--address", address, "--", "baseline", "ray.storage_path=/shared/runs"]) == 0
    finally:
        server.shutdown()
    assert len(ran) == 1 and ran[0][1:5] == ["job", "submit", "--address", address]


class _Following:
    """`ray job submit` following a job's logs: the first wait is interrupted by Ctrl-C, which reaches the CLI too
    (one process group); it then exits (status 1, "Aborted!")."""

    def __init__(self, cmd, env):
        self.cmd, self.waits, self.killed = cmd, 0, False

    def wait(self, timeout=None):
        self.waits += 1
        if self.waits == 1:
            raise KeyboardInterrupt
        return 1

    def kill(self):
        self.killed = True


def test_ctrl_c_stops_following_and_names_the_job_that_runs_on(monkeypatch, capsys):
    import jobs.submit as submit

    started = []
    monkeypatch.setattr(submit, "jobs_api_unreachable", lambda address: None)
    monkeypatch.setattr(submit.subprocess, "Popen", lambda cmd, env: started.append(_Following(cmd, env)) or started[-1])
    argv = ["train", "--address", "http://head:8265", "--", "baseline", "ray.storage_path=/shared/runs"]
    assert submit.main(argv) == 130
    job = _flag(started[0].cmd, "--submission-id")
    assert re.fullmatch(r"reid-train-\d{8}-\d{6}-[0-9a-f]{6}", job)  # generated here, so the line can name it
    assert started[0].waits == 2 and not started[0].killed  # the CLI ended by itself
    assert capsys.readouterr().err.strip() == (
        f"jobs.submit: stopped following job {job}; once submitted, it runs on in the cluster: `ray job logs "
        f"--address http://head:8265 -f {job}` follows it again, `ray job stop --address http://head:8265 {job}` "
        f"stops it")
    assert submit.main([*argv[:3], "--submission-id", "mine", *argv[3:]]) == 130
    assert _flag(started[1].cmd, "--submission-id") == "mine"
