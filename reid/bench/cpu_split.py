"""Where a node's CPUs went during a timed window: the decoding actors, this process, the rest of the machine, idle.

`reid bench data` divides a fit's clips by the number of decoding actors ("per decode core"). On a machine with
no more cores than actors, the consuming process and Ray's own share those cores, and an actor gets less than a
core: the per-core rate then mixes the pipeline's cost per clip with that contention. This module measures both
sides of the window from the kernel's counters, so that the bench can also print the clips per CPU-second the
actors actually used.

Linux only: process CPU times from /proc/<pid>/stat (utime + stime), the machine's from the `cpu` line of
/proc/stat (busy = user + nice + system + irq + softirq + steal; idle = idle + iowait). Elsewhere `sample()`
returns None and callers print no split. Only this node is seen: decoding actors on other nodes of a cluster are
not, which `split` reports as unavailable (it counts the actor processes it found).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class CpuSample:
    """Counters at one instant: wall time (s), the machine's busy and idle CPU-seconds, each process's CPU-seconds
    by pid with its command line."""

    wall: float
    busy: float
    idle: float
    processes: dict[int, tuple[str, float]]


@dataclass(frozen=True)
class CpuSplit:
    """CPU-seconds of one window by consumer, and the window's wall seconds; `cores` = machine CPUs."""

    wall: float
    cores: int
    actors: float
    actor_processes: int
    this_process: float
    rest: float
    idle: float

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


def read_process(stat: str, hz: int) -> float:
    """A /proc/<pid>/stat line -> the process's user + system CPU-seconds (fields 14 and 15; the command name in
    parentheses may itself hold spaces and parentheses, so fields are counted after its last ')')."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz


def sample() -> CpuSample | None:
    """The counters now; None where /proc is not Linux's."""
    try:
        hz = _ticks()
        busy, idle = read_machine((_PROC / "stat").read_text(), hz)
    except (OSError, ValueError, AttributeError):
        return None
    processes: dict[int, tuple[str, float]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:  # a process may end between the listing and the reads
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            processes[int(entry.name)] = (cmd, read_process((entry / "stat").read_text(), hz))
        except (OSError, ValueError, IndexError):
            continue
    return CpuSample(time.perf_counter(), busy, idle, processes)


def split(before: CpuSample, after: CpuSample, actor_marker: str, this_pid: int | None = None) -> CpuSplit:
    """The window between two samples. Decoding actors are the processes whose command line holds `actor_marker`
    (Ray titles an actor's process `ray::<class>`) and that used CPU in the window; a process that started during
    it counts from zero, one that ended is not seen."""
    pid = os.getpid() if this_pid is None else this_pid
    used = {p: t - before.processes.get(p, ("", 0.0))[1] for p, (_, t) in after.processes.items()}
    actors = [p for p, (cmd, _) in after.processes.items() if actor_marker in cmd and used[p] > 0]
    actor_s = sum(used[p] for p in actors)
    this_s = used.get(pid, 0.0)
    busy = after.busy - before.busy
    return CpuSplit(wall=after.wall - before.wall, cores=os.cpu_count() or 1, actors=actor_s,
                    actor_processes=len(actors), this_process=this_s, rest=max(0.0, busy - actor_s - this_s),
                    idle=after.idle - before.idle)
