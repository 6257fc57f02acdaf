"""A failed command prints one line (the cause and the log to read) instead of a traceback; the traceback goes to a
file. Set REID_TRACEBACK=1 to get the traceback on the console instead."""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from reid.commands.versions import version_text
from reid.errors import ReidError
from reid.ray_runtime import memory_kill

TRACEBACK_ENV = "REID_TRACEBACK"


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it, down to the exception that started it: through Ray Train's TrainingFailedError
    (`worker_failures`, `controller_failure`), Ray's RayTaskError (`cause`) and `raise ... from`."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        failures = getattr(exc, "worker_failures", None)
        inner = (next(iter(failures.values()), None) if isinstance(failures, dict) and failures else None)
        inner = inner or getattr(exc, "controller_failure", None) or getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner


def root_cause(exc: BaseException) -> BaseException:
    """The exception that started it (the last of `chain`)."""
    *_, last = chain(exc)
    return last


MEMORY_ADVICE = ("the node ran out of memory: fewer processes at once (ray.num_workers, data.decode_workers, "
                 "--max-concurrent), a smaller recipe (on CPU: the METHOD-synth-cpu configs), or nodes with more "
                 "memory")


GPU_MEMORY_ADVICE = ("a smaller batch (training: data.ids_per_batch x data.tracklets_per_id, data.seq_len, "
                     "data.height x data.width; evaluation: eval.batch_size), train.amp=true (bf16), fewer processes "
                     "on the GPU, or a GPU with more memory")
_CUDA_OOM = re.compile(r"CUDA out of memory\.(?: Tried to allocate (?P<ask>[\d.]+ \w+)\.)?"
                       r"(?: GPU (?P<gpu>\d+) has a total capacity of (?P<total>[\d.]+ \w+) of which "
                       r"(?P<free>[\d.]+ \w+) is free)?")


def cuda_oom(text: str) -> str | None:
    """`CUDA out of memory (GPU 0: tried to allocate 2.00 GiB, 3.06 MiB free of 79.10 GiB)` from PyTorch's
    one-paragraph message (the allocator's statistics and its PYTORCH_CUDA_ALLOC_CONF hint left out), None for
    another error."""
    found = _CUDA_OOM.search(text)
    if found is None:
        return None
    parts = [f"tried to allocate {found['ask']}"] if found["ask"] else []
    if found["total"]:
        parts.append(f"{found['free']} free of {found['total']}")
    where = f"GPU {found['gpu']}: " if found["gpu"] else ""
    return "CUDA out of memory" + (f" ({where}{', '.join(parts)})" if parts else "")


def disk_full(exc: OSError) -> str:
    """`no space left on the device of <file> (N MB free there now): ...` for an ENOSPC error."""
    where = Path(exc.filename) if exc.filename else None
    free = ""
    if where is not None:
        folder = next((p for p in (where, *where.parents) if p.is_dir()), None)
        if folder is not None:
            free = f" ({shutil.disk_usage(folder).free / 1e6:.0f} MB free there now)"
    return (f"no space left on the device of {where or 'a file being written'}{free}: free some, or write the run "
            f"elsewhere (ray.storage_path, --out)")


# what to do about an error of the file system on a path the command was given (its output, a run's storage)
PATH_ADVICE = {
    errno.ENOTDIR: "a file stands where that path needs a folder",
    errno.EEXIST: "a file stands where that path needs a folder",
    errno.EACCES: "no permission there: check the folder's owner and mode, or write elsewhere "
                  "(ray.storage_path, --out)",
    errno.EROFS: "a read-only file system: write elsewhere (ray.storage_path, --out)",
}


def path_error(exc: OSError) -> str:
    """`Not a directory: /runs/x (a file stands where that path needs a folder)` for an error of the file system that
    names its path (OSError's own text quotes it and leads with `[Errno 20]`)."""
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    advice = PATH_ADVICE.get(exc.errno or 0)
    return f"{exc.strerror}: {where}" + (f" ({advice})" if advice else "")


def describe(exc: BaseException) -> str:
    """`Type: first line of the message` (a ReidError: just its message, it is written for the user). A worker
    Ray's memory monitor killed says so, whatever error carried it (Train reports a failed health check)."""
    cause = root_cause(exc)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(cause))  # RayTaskError colours its "ray::task()" line, tty or not
    oom = memory_kill(plain) or memory_kill(str(exc))
    if oom:
        return f"{oom}; {MEMORY_ADVICE}"
    gpu = cuda_oom(plain) or cuda_oom(str(exc))
    if gpu:
        return f"{gpu}: {GPU_MEMORY_ADVICE}"
    full = next((e for e in chain(exc) if isinstance(e, OSError) and e.errno == errno.ENOSPC), None)
    if full is not None:  # whatever a library made of it on the way (torch.save: "unexpected pos ...")
        return disk_full(full)
    if isinstance(cause, OSError) and cause.filename and cause.strerror:
        return path_error(cause)
    lines = [ln.strip() for ln in plain.splitlines() if ln.strip()]
    # RayTaskError's text starts with the task's name and then the remote traceback; the last line is the error,
    # with its own type
    remote = bool(lines) and lines[0].startswith("ray::")
    text = lines[-1] if remote else (lines[0] if lines else "")
    if isinstance(cause, ReidError) or remote:
        return text
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def report_failure(command: str, exc: BaseException) -> str:
    """Write the full traceback to a log file and return the one line for the console."""
    log_dir = Path(tempfile.gettempdir()) / "reid-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    head = f"{version_text()}\ncommand: {' '.join(sys.argv)}\n\n"
    path.write_text(head + "".join(traceback.format_exception(exc)))
    line = f"reid {command}: error: {describe(exc)} (traceback: {path}"
    ray_logs = _ray_logs()
    return line + (f"; Ray's logs: {ray_logs})" if ray_logs else ")")


def _ray_logs() -> Path | None:
    if "ray" not in sys.modules:  # a command that never started Ray: do not import it just to ask
        return None
    from reid.ray_runtime import local_start_tried, ray_log_dir

    # a local node that failed to start is not initialised; its logs are the newest session's (Ray's own symlink).
    # A cluster this process could not reach has none here: the newest session is another run's.
    latest = Path(tempfile.gettempdir()) / "ray" / "session_latest" / "logs"
    return ray_log_dir() or (latest if local_start_tried() and latest.is_dir() else None)
