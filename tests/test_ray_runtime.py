"""reid.ray_runtime: workers use the driver's interpreter even under `uv run`, token mode, the log folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray._private.ray_constants as ray_constants
import ray._private.worker as ray_worker
from ray._private.runtime_env import uv_runtime_env_hook

from reid import ray_runtime
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]
UV_CMDLINE = ["uv", "run", "--frozen", "python", "driver.py"]


@pytest.fixture
def under_uv_run(monkeypatch):
    """This process looks like a driver started by `uv run` to Ray's detection (its parent's command line)."""
    monkeypatch.setattr(uv_runtime_env_hook, "_get_uv_run_cmdline", lambda: list(UV_CMDLINE))
    monkeypatch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", True)  # Ray's default
    monkeypatch.delenv(ray_runtime.UV_RUN_ENV, raising=False)


def test_ray_alone_would_start_workers_through_uv_run(under_uv_run, tmp_path, monkeypatch):
    """The control: with Ray's default, the job's workers get `uv run ... python` as their interpreter."""
    monkeypatch.chdir(tmp_path)
    env = ray_worker._maybe_modify_runtime_env(None, False)
    assert env["py_executable"].startswith("uv run --frozen") and env["py_executable"].endswith(" python")


def test_runs_the_project_starts_use_the_driver_python(under_uv_run):
    assert ray_runtime.use_driver_python() is False
    assert os.environ[ray_runtime.UV_RUN_ENV] == "0"  # inherited by processes started from here
    assert ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV is False
    assert ray_worker._maybe_modify_runtime_env(None, False) is None  # the runtime env left as given


def test_uv_run_workers_on_request(under_uv_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ray_runtime.UV_RUN_ENV, "1")
    assert ray_runtime.use_driver_python() is True
    assert ray_worker._maybe_modify_runtime_env(None, False)["py_executable"].startswith("uv run")


@pytest.mark.parametrize(("env", "token_file", "expected"), [
    ({}, False, False),
    ({}, True, True),
    ({"RAY_AUTH_TOKEN": "abc"}, False, True),
    ({"RAY_AUTH_MODE": "disabled"}, True, False),  # the user's explicit mode wins
])
def test_token_mode_when_a_token_is_available(env, token_file, expected, tmp_path, monkeypatch):
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if token_file:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("secret\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert ray_runtime.use_token_if_available() is expected
    assert (os.environ.get("RAY_AUTH_MODE") == "token") is expected


_DRIVER = """
import json, os, sys
import ray
from ray._private.runtime_env.uv_runtime_env_hook import _get_uv_run_cmdline
from reid.config.schema import RayConfig
from reid.ray_runtime import init_ray, local_cluster_started, ray_log_dir

detected = _get_uv_run_cmdline()
init_ray(RayConfig(object_store_memory=150 * 1024**2), num_cpus=1, dashboard=False)

@ray.remote(num_cpus=0.5)
def interpreter():
    return sys.executable

print(json.dumps({"detected": detected, "driver": sys.executable, "worker": ray.get(interpreter.remote(), timeout=300),
                  "job_env": ray.get_runtime_context().runtime_env, "logs": str(ray_log_dir()),
                  "local": local_cluster_started()}))
ray.shutdown()
assert not local_cluster_started()
"""

# Started as `uv run driver.py`: a process whose command line is exactly what Ray's detection looks for (its
# argv[0] is "uv", argv[1] "run"; the interpreter runs the file named `run`), which starts the real driver.
_FAKE_UV = """
import os, subprocess, sys
sys.exit(subprocess.call([os.environ["DRIVER_PYTHON"], "driver.py"]))
"""


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_a_driver_under_uv_run_starts_workers_with_its_own_python(tmp_path):
    """A real driver whose parent is `uv run`: Ray detects it, and still the worker runs the driver's interpreter
    with no uv re-sync (no `py_executable` in the job's runtime env). Also: the default token-auth start-up works
    and prints no warning."""
    (tmp_path / "driver.py").write_text(_DRIVER)
    (tmp_path / "run").write_text(_FAKE_UV)
    # RAY_AUTH_MODE unset: the local cluster gets token auth and the driver must talk to it with the token
    env = {k: v for k, v in os.environ.items() if k not in (ray_runtime.UV_RUN_ENV, "RAY_ADDRESS", "RAY_AUTH_MODE")}
    env.update(DRIVER_PYTHON=sys.executable, PYTHONPATH=str(REPO))
    proc = subprocess.run(["uv", "run", "driver.py"], executable=sys.executable, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["detected"][:2] == ["uv", "run"]  # Ray's own detection sees `uv run`
    assert "py_executable" not in out["job_env"]
    # no job-wide setup hook either: each worker of such a job starts through it (about 1.1 s more per fit's
    # decoding actors here; reid.training.ray_session.quiet_train_reports)
    assert "worker_process_setup_hook" not in out["job_env"]
    assert out["worker"] == out["driver"]
    assert "Uninstalled" not in proc.stderr and "does not match" not in proc.stderr
    assert Path(out["logs"]).is_dir() and f"Ray's own logs: {out['logs']}" in proc.stdout
    assert "Token authentication is enabled" not in proc.stderr
    assert out["local"] is True  # a cluster it started: one that never grows (reid.training.capacity)


def test_quiet_libraries_turn_down_ray_data_ray_train_and_one_core_line(monkeypatch):
    from ray._private import ray_logging

    for dedup in (ray_logging.stdout_deduplicator, ray_logging.stderr_deduplicator):
        monkeypatch.setattr(dedup, "skip_re", dedup.skip_re)  # restored after the test
    monkeypatch.setattr(ray_logging, "_color", ray_logging._color)
    for key in (ray_runtime.DATA_LOGGING_ENV, "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "RAY_DEDUP_LOGS_SKIP_REGEX",
                ray_runtime.COLOR_PREFIX_ENV):
        monkeypatch.delenv(key, raising=False)
    ray_runtime.quiet_libraries(local=True)  # pytest captures stdout: not a terminal
    assert os.environ[ray_runtime.COLOR_PREFIX_ENV] == "0"  # Ray's "(pid=...)" prefixes without escape codes
    assert Path(os.environ[ray_runtime.DATA_LOGGING_ENV]).is_file()
    assert os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "0"
    assert ray_runtime.train_logging_config().log_level == "CRITICAL"
    advice = ("[2026-12-02 04:39:11,074 E 13950 16332] core_worker.cc:2465: Actor with class name: 'MapWorker' and "
              "ID: 'd5' has constructor arguments in the object store and max_restarts > 0. If the arguments ...")
    cleaner = ("Failed to query Ray Train Controller actor state. State API may be temporarily unavailable. "
               "Continuing to monitor.")  # Ray Train's PlacementGroupCleaner as a stopped driver's cluster ends
    # Ray Data's lines from the workers of a cluster `reid` did not start (their own logging config), as seen
    data = ["Starting execution of Dataset dataset_035ATQSAgOtH9deDJmfCUv_0. Full logs are in "
            "/tmp/ray/session_2026-12-07_09-11-43_525822_29090/logs/ray-data",
            "Execution plan of Dataset dataset_035ATQSAgOtH9deDJmfCUv_0: InputDataBuffer[Input] -> "
            "ActorPoolMapOperator[MapBatches(_DecodeBatches)]",
            "Progress bars disabled. To enable, set `ray.data.DataContext.get_current().enable_progress_bars = True`.",
            "\u2714\ufe0f  Dataset dataset_035ATQSAgOtH9deDJmfCUv_0 execution finished in 2.43 seconds"]
    out = ray_logging.stderr_deduplicator.deduplicate({"ip": "1", "pid": 7,
                                                       "lines": [advice, cleaner, *data, "[reid] epoch 1/2"]})
    assert [line for batch in out for line in batch["lines"]] == ["[reid] epoch 1/2"]
    # Ray's "[repeated Nx across cluster]" note without escape codes, as the prefixes
    note = ray_logging.DedupState(timestamp=0, count=3, line="[reid] epoch 3/20", metadata={}, sources=set())
    assert note.formatted().startswith("[reid] epoch 3/20 [repeated 3x across cluster]")
    assert "\x1b" not in note.formatted()


def test_on_a_terminal_rays_prefixes_keep_their_colour(monkeypatch):
    class Terminal:
        def isatty(self) -> bool:
            return True

    from ray._private import ray_logging

    for dedup in (ray_logging.stdout_deduplicator, ray_logging.stderr_deduplicator):
        monkeypatch.setattr(dedup, "skip_re", dedup.skip_re)  # restored after the test
    monkeypatch.setattr(ray_logging, "_color", ray_logging._color)
    for key in (ray_runtime.DATA_LOGGING_ENV, ray_runtime.COLOR_PREFIX_ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(sys, "stdout", Terminal())
    ray_runtime.quiet_libraries(local=False)
    assert ray_runtime.COLOR_PREFIX_ENV not in os.environ


def test_ray_data_logging_yaml_is_ray_datas_default_with_a_quieter_console():
    import yaml
    from ray.data._internal.logging import DEFAULT_CONFIG

    ours = yaml.safe_load(ray_runtime.DATA_LOGGING_YAML.read_text())
    assert ours["loggers"] == {"ray.data": {**DEFAULT_CONFIG["loggers"]["ray.data"], "handlers": ["file", "console"]}}
    assert ours["handlers"]["file"] == DEFAULT_CONFIG["handlers"]["file"]
    assert ours["handlers"]["console"] == {**DEFAULT_CONFIG["handlers"]["console"], "level": "ERROR"}


_SIGTERM_DRIVER = """
import sys, time
from reid.config.schema import RayConfig
from reid.errors import Terminated
from reid.ray_runtime import init_ray

init_ray(RayConfig(object_store_memory=100 * 1024**2), num_cpus=1, dashboard=False)
try:
    print("ready", flush=True)  # inside: the signal may come as soon as the line is out
    time.sleep(300)
except Terminated:
    print("terminated", flush=True)
    sys.exit(143)
"""


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_sigterm_to_a_ray_driver_unwinds_without_rays_stack_dump(tmp_path):
    """`ray job stop` sends SIGTERM: after `init_ray` it raises Terminated (a clean exit, status 143 in the CLI)
    instead of Ray's C++ failure-signal handler printing a stack dump."""
    import signal

    (tmp_path / "driver.py").write_text(_SIGTERM_DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env.update(PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "driver.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        before = [proc.stdout.readline() for _ in range(2)]  # Ray's logs line, then "ready" (the test's timeout
        assert "ready\n" in before, before                      # bounds a driver that never gets there)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "terminated" in out, (proc.returncode, out, err[-2000:])
    assert "SIGTERM received" not in err


def test_the_logs_line_names_ray_trains_folder_only_for_commands_that_train():
    logs = Path("/tmp/ray/session_x/logs")
    assert ray_runtime.logs_line(logs, train=True) == (
        "[reid] Ray's own logs: /tmp/ray/session_x/logs (Ray Train: /tmp/ray/session_x/logs/train)")
    assert ray_runtime.logs_line(logs, train=False) == "[reid] Ray's own logs: /tmp/ray/session_x/logs"
    assert ray_runtime.logs_line(None, train=True) == (
        "[reid] Ray's own logs: the head node's /tmp/ray/session_latest/logs")


def test_an_address_where_nothing_listens_fails_in_one_line_within_its_bound(capsys):
    import time

    from reid.errors import ReidError

    port = free_port()
    start = time.monotonic()
    with pytest.raises(ReidError, match=rf"cannot reach the Ray cluster at 127.0.0.1:{port} \(Connection refused\) "
                                        r"within 2 s"):
        ray_runtime.check_reachable(f"127.0.0.1:{port}", timeout_s=2.0)
    assert 1.9 <= time.monotonic() - start < 10  # retried until the bound, not Ray's minutes
    assert "waiting up to 2 s for the Ray cluster" in capsys.readouterr().out


def test_a_listening_address_passes_at_once_and_auto_is_left_to_ray(monkeypatch):
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        ray_runtime.check_reachable(f"127.0.0.1:{port}", timeout_s=0.1)
        ray_runtime.check_reachable(f"ray://127.0.0.1:{port}", timeout_s=0.1)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("auto must not be probed"))
    ray_runtime.check_reachable("auto", timeout_s=0.1)


def test_a_jobs_api_address_is_refused_with_what_to_do():
    from reid.errors import ReidError

    with pytest.raises(ReidError, match=r"Jobs API \(dashboard\) address: submit the command with `ray job submit "
                                        r"--address http://head:8265 -- reid \.\.\.`"):
        ray_runtime.check_reachable("http://head:8265")


def test_init_ray_checks_an_explicit_address_before_ray_init(monkeypatch):
    import ray

    from reid.errors import ReidError

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init called for an unreachable address"))
    monkeypatch.setattr(ray_runtime, "CONNECT_TIMEOUT_S", 0.2)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ReidError, match="cannot reach the Ray cluster"):
        ray_runtime.init_ray(address=f"127.0.0.1:{free_port()}", quiet=False)


QUIET_TEARDOWN = """
import sys, weakref
from reid.ray_runtime import quiet_teardown
if sys.argv[1] == "quiet":
    quiet_teardown()
    quiet_teardown()  # twice, as a reused process would: still one hook

class Thing:
    pass

def exits(_ref):  # what Ray's SIGTERM handler does when it runs inside a garbage-collection callback
    raise SystemExit(1)

def fails(_ref):
    raise ValueError("a real bug")

a, b = Thing(), Thing()
ra, rb = weakref.ref(a, exits), weakref.ref(b, fails)
del a, b
print("done")
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["quiet", "default"])
def test_an_exit_raised_in_a_gc_callback_is_not_reported_but_other_errors_are(mode):
    proc = subprocess.run([sys.executable, "-c", QUIET_TEARDOWN, mode], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=50)
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    assert "ValueError: a real bug" in proc.stderr
    assert ("SystemExit" in proc.stderr) == (mode == "default"), proc.stderr


@pytest.mark.timeout(60)
def test_held_back_worker_lines_are_printed_when_flushed(capsys):
    """Ray holds a line that a second worker repeats (its log deduplication) and prints it when the driver
    disconnects; `flush_worker_logs` prints it where the command is instead (before a sweep's tables)."""
    from ray._private import ray_logging

    dedup = ray_logging.stdout_deduplicator
    dedup.flush()

    def batch(pid: int) -> dict:
        return {"ip": "127.0.0.1", "pid": pid, "task_name": "run_trial", "actor_name": "", "is_err": False,
                "job": "01000000", "localhost": "127.0.0.1", "lines": ["no ImageNet weights for ResNet-18 at x"]}

    first = dedup.deduplicate(batch(101))
    held = dedup.deduplicate(batch(102))
    assert first[0]["lines"] == ["no ImageNet weights for ResNet-18 at x"] and held[0]["lines"] == []  # held back
    ray_runtime.flush_worker_logs()
    out = capsys.readouterr().out
    assert "run_trial pid=102)" in out and out.rstrip().endswith("no ImageNet weights for ResNet-18 at x")
    assert dedup.flush() == []  # nothing left for the disconnect to print later
