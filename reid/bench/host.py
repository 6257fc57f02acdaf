"""What a benchmark ran on, recorded in its JSON file beside the numbers: a ratio means little without the machine
(this project's numbers came from 2-core hosts of two CPU models, which differ by a fifth and more)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def git_commit() -> str:
    """The commit of this checkout (`git describe --always --dirty`), or '' for an installed package."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return ""
    try:
        return subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_conditions() -> dict[str, Any]:
    """Date (UTC), the code's commit, the CPUs this process may use and their model, Python / Ray / torch."""
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": git_commit() or None,
            "cpus": usable, "cpu_model": cpu_model(), "python": sys.version.split()[0], "ray": version("ray"),
            "torch": version("torch")}
