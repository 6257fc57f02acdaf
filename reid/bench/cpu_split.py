"""Where a node's CPUs went during a timed window: the decoding actors, this process, the rest of the machine, idle.

`reid bench data` divides a fit's clips by the number of decoding actors ("per decode core"). On a machine with
no more cores than actors, the consuming process and Ray's own share those cores, and an actor gets less than a
core: the per-core rate then mixes the pipeline's cost per clip with that contention. This module measures both
sides of the window from the kernel's counters, so that the bench can also print the clips per CPU-second the
actors actually used.

Linux only: process CPU times from /proc/<pid>/stat (utime + stime; stime is also kept apart, the actors' share of
their CPU spent in the kernel), the machine's from the `cpu` line of /proc/stat (busy = user + nice + system + irq +
softirq + steal; idle = idle + iowait). Elsewhere `sample()` returns None and callers print no split. Only this node
is seen: decoding actors on other nodes of a cluster are not, which the caller can tell from the number of actor
processes counted.

Ray Data ends an idle decoding actor as soon as the pool has no input left, often before the consumer has read
the last batches: its process is gone from the final sample. `Watch` therefore re-reads the actors' counters
every `interval` seconds in a thread (and looks for new actor processes every `rescan` seconds), and an actor
that exits counts up to its last reading (under `interval` of its CPU lost; seen on the video store, 2026-12-05:
one of two actors had exited by the end of the second fit of a process and its 13 CPU-s went uncounted).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

_PROC = Path("/proc")


class ProcessCpu(NamedTuple):
    """One process at one instant: its command line (Ray's process title for a Ray worker), its user + system
    CPU-seconds, and the system (kernel) part of them."""

    cmd: str
    cpu: float
    kernel: float = 0.0


@dataclass(frozen=True)
class CpuSample:
    """Counters at one instant: wall time (s), the machine's busy and idle CPU-seconds, each process's CPU-seconds
    by pid with its command line."""

    wall: float
    busy: float
    idle: float
    processes: dict[int, ProcessCpu]


@dataclass(frozen=True)
class CpuSplit:
    """CPU-seconds of one window by consumer, and the window's wall seconds; `cores` = machine CPUs;
    `actors_kernel`: the part of `actors` spent in the kernel (system time)."""

    wall: float
    cores: int
    actors: float
    actor_processes: int
    this_process: float
    rest: float
    idle: float
    actors_kernel: float = 0.0

    def share(self, cpu_seconds: float) -> float:
        """CPU-seconds over the window as a number of cores kept busy."""
        return cpu_seconds / self.wall if self.wall > 0 else 0.0


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def read_machine(text: str, hz: int) -> tuple[float, float]:
    """The `cpu` line of /proc/stat -> (busy, idle) CPU-seconds since boot."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:9]] + [0] * 8
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            return (user + nice + system + irq + softirq + steal) / hz, (idle + iowait) / hz
    raise ValueError("/proc/stat has no aggregate 'cpu' line")


def read_process_times(stat: str, hz: int) -> tuple[float, float]:
    """A /proc/<pid>/stat line -> the process's (user, system) CPU-seconds (fields 14 and 15; the command name in
    parentheses may itself hold spaces and parentheses, so fields are counted after its last ')')."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) / hz, int(fields[12]) / hz


def _processes(hz: int, pids: list[int] | None = None) -> dict[int, ProcessCpu]:
    """pid -> its ProcessCpu, for every process or for `pids` (those still alive)."""
    out: dict[int, ProcessCpu] = {}
    names = [str(p) for p in pids] if pids is not None else [e.name for e in _PROC.iterdir() if e.name.isdigit()]
    for name in names:
        try:  # a process may end between the listing and the reads
            cmd = (_PROC / name / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            user, system = read_process_times((_PROC / name / "stat").read_text(), hz)
            out[int(name)] = ProcessCpu(cmd, user + system, system)
        except (OSError, ValueError, IndexError):
            continue
    return out


def sample() -> CpuSample | None:
    """The counters now; None where /proc is not Linux's."""
    try:
        hz = _ticks()
        busy, idle = read_machine((_PROC / "stat").read_text(), hz)
    except (OSError, ValueError, AttributeError):
        return None
    return CpuSample(time.perf_counter(), busy, idle, _processes(hz))


RAY_TITLE = "ray::"  # how Ray titles its worker processes (an actor's: `ray::<class>`, Ray Data's pool:
# `ray::MapWorker(MapBatches(<class>))`); another process whose command line names the class (`pgrep -f`, `perf
# record`, `py-spy`) is not an actor


def is_actor(cmd: str, marker: str, title_prefix: str = RAY_TITLE) -> bool:
    """Whether a process with command line `cmd` is one of the actors: its title starts with `title_prefix` and
    names `marker`."""
    return cmd.startswith(title_prefix) and marker in cmd


def split(before: CpuSample, after: CpuSample, actor_marker: str, this_pid: int | None = None,
          last_seen: dict[int, ProcessCpu] | None = None, title_prefix: str = RAY_TITLE,
          new_only: bool = False) -> CpuSplit:
    """The window between two samples. Decoding actors are the processes whose command line starts with
    `title_prefix` and holds `actor_marker` (`is_actor`) and that used CPU in the window; a process that started
    during it counts from zero. `last_seen`: actor pid -> its latest reading in between (`Watch`), which stands for
    an actor that has exited by `after`. `new_only`: only the actors that started inside the window (a window
    opened before a pool starts: an earlier pool's actors, still ending, are not this one's)."""
    pid = os.getpid() if this_pid is None else this_pid
    none = ProcessCpu("", 0.0, 0.0)
    final = {p: c for p, c in after.processes.items() if is_actor(c.cmd, actor_marker, title_prefix)}
    final = {**(last_seen or {}), **final}
    if new_only:
        final = {p: c for p, c in final.items() if p not in before.processes}
    used = {p: (c.cpu - before.processes.get(p, none).cpu, c.kernel - before.processes.get(p, none).kernel)
            for p, c in final.items()}
    actors = [p for p, (u, _) in used.items() if u > 0]
    actor_s, kernel_s = sum(used[p][0] for p in actors), sum(used[p][1] for p in actors)
    this_s = after.processes.get(pid, none).cpu - before.processes.get(pid, none).cpu
    busy = after.busy - before.busy
    return CpuSplit(wall=after.wall - before.wall, cores=os.cpu_count() or 1, actors=actor_s,
                    actor_processes=len(actors), this_process=this_s, rest=max(0.0, busy - actor_s - this_s),
                    idle=after.idle - before.idle, actors_kernel=kernel_s)


class Watch:
    """A window from `start()` to `stop()`, with the actor processes (`is_actor`) re-read in a daemon thread in
    between; `stop()` returns the split from `mark()` (or `start()` if never marked) to the end, or None where /proc
    cannot be read, and leaves in `whole` the split from `start()` of the actors that started after it."""

    def __init__(self, actor_marker: str, interval: float = 0.1, rescan: float = 1.0,
                 title_prefix: str = RAY_TITLE) -> None:
        self.marker, self.interval, self.rescan, self.prefix = actor_marker, interval, rescan, title_prefix
        self.last_seen: dict[int, ProcessCpu] = {}
        self._before: CpuSample | None = None
        self._mark: CpuSample | None = None
        self._gone_at_mark: set[int] = set()  # actors that had exited by the mark: not in its window
        self.whole: CpuSplit | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._before = sample()
        if self._before is None:
            return
        self._note(self._before.processes)
        self._thread = threading.Thread(target=self._run, name="cpu-split-watch", daemon=True)
        self._thread.start()

    def mark(self) -> None:
        """Where the window that `stop()` returns begins (the first batch of a fit, when `start()` was at its
        stream's opening)."""
        if self._before is not None:
            self._mark = sample()
            if self._mark is not None:
                self._gone_at_mark = {p for p in list(self.last_seen) if p not in self._mark.processes}

    def _note(self, processes: dict[int, ProcessCpu]) -> None:
        for p, c in processes.items():
            if is_actor(c.cmd, self.marker, self.prefix):
                self.last_seen[p] = c

    def _run(self) -> None:
        hz, last_scan = _ticks(), time.perf_counter()
        while not self._done.wait(self.interval):
            if time.perf_counter() - last_scan >= self.rescan:
                self._note(_processes(hz))
                last_scan = time.perf_counter()
            else:
                self._note(_processes(hz, list(self.last_seen)))

    def stop(self) -> CpuSplit | None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        after = sample() if self._before is not None else None
        if self._before is None or after is None:
            return None
        self.whole = split(self._before, after, self.marker, last_seen=self.last_seen, title_prefix=self.prefix,
                           new_only=True)
        seen = {p: c for p, c in self.last_seen.items() if p not in self._gone_at_mark}
        return split(self._mark or self._before, after, self.marker, last_seen=seen, title_prefix=self.prefix)
