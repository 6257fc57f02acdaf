"""A failed command: one line with the cause and the logs to read, the traceback in a file, no traceback printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reid.cli import main
from reid.commands import failure, synth
from reid.errors import ReidError


class _WorkerGroupError(Exception):  # the shape of ray.train's TrainingFailedError: {rank: exception}
    def __init__(self, failures: dict[int, Exception]) -> None:
        super().__init__("Training failed due to worker errors:\n[Rank 0]\nTraceback ...")
        self.worker_failures = failures


def _chained() -> Exception:
    try:
        try:
            raise OSError("disk full\nmore detail")
        except OSError as inner:
            raise RuntimeError("fit failed") from inner
    except RuntimeError as outer:
        return outer


def test_the_cause_is_found_inside_ray_trains_and_pythons_wrappers():
    cause = ValueError("bad shape [2, 3]")
    assert failure.root_cause(_WorkerGroupError({1: cause})) is cause
    assert failure.describe(_WorkerGroupError({0: cause})) == "ValueError: bad shape [2, 3]"
    assert failure.describe(_chained()) == "OSError: disk full"
    assert failure.describe(_WorkerGroupError({0: ReidError("no manifest at x")})) == "no manifest at x"


# what Ray Train 2.60 raised when Ray's memory monitor killed Train workers (`reid train baseline ray.num_workers=3`
# of the GPU recipe on a 24 GB machine, 2026-12-07), shortened: the kill is inside a failed health check
_KILL = ("4 worker(s) were killed due to the node running low on memory. Memory on the node (IP: 192.0.2.2, ID: "
         "2cb7f5) was 22.57GB used / 23.54GB limit (0.958887)\nOOM kill reason: Memory usage 24097939456B exceeded "
         "threshold of 24012374016B (95.0% of 25276182528B limit)\n")
_HEALTH_CHECK = ("A worker health check failed.\nWorker info: Worker(\n  actor=Actor(RayTrainWorker, 68fd2c),\n)\n"
                 + _KILL)


class WorkerHealthCheckFailedError(Exception):
    pass


def test_a_worker_killed_for_memory_says_so_whatever_carried_it():
    expected = ("Ray's memory monitor killed 4 worker(s): the node was at 22.57GB of 23.54GB; the node ran out of "
                "memory: fewer processes at once (ray.num_workers, data.decode_workers, --max-concurrent), a "
                "smaller recipe (on CPU: the METHOD-synth-cpu configs), or nodes with more memory")
    assert failure.describe(_WorkerGroupError({2: WorkerHealthCheckFailedError(_HEALTH_CHECK)})) == expected
    assert failure.describe(RuntimeError("Caught unexpected exception: " + _KILL)) == expected
    assert failure.describe(WorkerHealthCheckFailedError("A worker health check failed.")) == (
        "WorkerHealthCheckFailedError: A worker health check failed.")


def test_a_full_disk_is_named_whatever_wrapped_it(tmp_path):
    import errno

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "epoch_0002.tmp" / "state.pt"))
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("unexpected pos 704 vs 598") from inner
    except RuntimeError as outer:
        wrapped = _WorkerGroupError({0: outer})
    line = failure.describe(wrapped)
    assert re.fullmatch(rf"no space left on the device of {re.escape(str(full.filename))} "
                        r"\(\d+ MB free there now\): free some, or write the run elsewhere \(ray.storage_path, --out\)",
                        line), line
    # pyarrow's (Ray Train's storage) names no file
    assert failure.describe(OSError(errno.ENOSPC, "Error writing bytes to file")).startswith(
        "no space left on the device of a file being written: ")


def test_a_path_the_file_system_refused_is_named_with_what_to_do(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError) as not_dir:
        (tmp_path / "file" / "runs" / "r").mkdir(parents=True)  # `ray.storage_path=` a file's path
    assert failure.describe(not_dir.value) == (f"Not a directory: {tmp_path / 'file' / 'runs' / 'r'} "
                                               f"(a file stands where that path needs a folder)")
    with pytest.raises(OSError) as exists:
        (tmp_path / "file").mkdir(parents=True, exist_ok=True)  # `--out file/x.html`: its folder made first
    assert failure.describe(exists.value) == (f"File exists: {tmp_path / 'file'} "
                                              f"(a file stands where that path needs a folder)")
    missing = FileNotFoundError(2, "No such file or directory", "/nowhere/x")
    assert failure.describe(missing) == "No such file or directory: /nowhere/x"
    assert failure.describe(PermissionError(13, "Permission denied", "/shared/runs")).startswith(
        "Permission denied: /shared/runs (no permission there: ")
    assert failure.describe(OSError("disk full")) == "OSError: disk full"  # no path: as any other error


def test_a_ray_task_errors_coloured_text_gives_its_last_line():
    text = ("\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=31420, ip=192.0.2.2)\n  File \"x.py\", line 1, in f\n"
            "RuntimeError: injected fault")
    assert failure.describe(RuntimeError(text)) == "RuntimeError: injected fault"


def test_a_failed_command_prints_one_line_and_keeps_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise _WorkerGroupError({0: ZeroDivisionError("division by zero")})

    monkeypatch.setattr(synth, "run", broken)
    monkeypatch.delenv(failure.TRACEBACK_ENV, raising=False)
    assert main(["synth", "--out", "nowhere"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out
    assert lines[0].startswith("reid synth: error: ZeroDivisionError: division by zero (traceback: ")
    log = Path(re.search(r"traceback: (\S+?)[;)]", lines[0]).group(1))
    assert "ZeroDivisionError" in log.read_text() and "Traceback" in log.read_text()
    head = log.read_text().splitlines()[:3]  # what a bug report needs, before the traceback
    assert head[0].startswith("reid ") and head[1].startswith("Python ") and ", ray " in head[1]
    assert head[2].startswith("command: ")


def test_the_traceback_on_request(monkeypatch):
    def broken(args):
        raise KeyError("x")

    monkeypatch.setattr(synth, "run", broken)
    monkeypatch.setenv(failure.TRACEBACK_ENV, "1")
    with pytest.raises(KeyError):
        main(["synth", "--out", "nowhere"])


def test_the_newest_ray_session_is_named_only_after_a_local_start_was_tried(monkeypatch, tmp_path):
    """A local node that failed to come up left its logs in session_latest; a cluster the command could not reach
    left none here, and session_latest is then another run's: not worth naming."""
    import sys
    import tempfile

    from reid import ray_runtime

    (tmp_path / "ray" / "session_latest" / "logs").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setitem(sys.modules, "ray", sys.modules.get("ray") or object())
    monkeypatch.setattr(ray_runtime, "ray_log_dir", lambda: None)
    monkeypatch.setattr(ray_runtime, "_LOCAL_CLUSTER", {})
    unreachable = failure.report_failure("train", ReidError("cannot reach the Ray cluster at h:6379"))
    assert "Ray's logs" not in unreachable and unreachable.endswith(".log)")
    monkeypatch.setattr(ray_runtime, "_LOCAL_CLUSTER", {"tried": True})
    node_failed = failure.report_failure("train", RuntimeError("The current node timed out during startup"))
    assert node_failed.endswith(f"; Ray's logs: {tmp_path / 'ray' / 'session_latest' / 'logs'})")


# PyTorch 2.15's message (c10/cuda/CUDACachingAllocator), as a Train worker on a full GPU would raise it
_CUDA = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 3.06 MiB "
         "is free. Including non-PyTorch memory, this process has 79.09 GiB memory in use. Of the allocated memory "
         "78.50 GiB is allocated by PyTorch, and 100.00 MiB is reserved by PyTorch but unallocated. If reserved but "
         "unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
         "fragmentation.  See documentation for Memory Management")


def test_a_gpu_out_of_memory_is_one_short_line_with_what_to_lower():
    import torch

    said = failure.describe(_WorkerGroupError({1: torch.OutOfMemoryError(_CUDA)}))
    assert said == ("CUDA out of memory (GPU 0: tried to allocate 2.00 GiB, 3.06 MiB free of 79.10 GiB): "
                    + failure.GPU_MEMORY_ADVICE)
    assert "data.seq_len" in said and "eval.batch_size" in said and "PYTORCH_CUDA_ALLOC_CONF" not in said
    assert failure.describe(RuntimeError("CUDA out of memory. Tried to allocate more than 1EB memory.")) == (
        "CUDA out of memory: " + failure.GPU_MEMORY_ADVICE)
    assert failure.cuda_oom("CUDA error: an illegal memory access was encountered") is None
