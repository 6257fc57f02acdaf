"""A decoding process that Ray ends without closing its frame cache leaves the cache's directory behind (up to its
size limit of videos); the next cache made on the same host removes the directories of processes that are gone
(reid/data/frame_cache.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from reid.data.frame_cache import FrameCache, owner_prefix, remove_orphans


def _gone_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


@pytest.mark.timeout(60)
def test_a_new_cache_removes_the_directories_of_processes_that_are_gone(tmp_path):
    prefix = owner_prefix()
    assert prefix == f"reid-frames-{socket.gethostname()}.{os.stat('/proc/self/ns/pid').st_ino}+"
    gone = tmp_path / f"{prefix}{_gone_pid()}-abc"
    (gone / "sub").mkdir(parents=True)
    (gone / "sub" / "v.mp4").write_bytes(b"x" * 100)
    alive = tmp_path / f"{prefix}{os.getpid()}-def"  # a live process's cache (this one)
    other_host = tmp_path / f"reid-frames-{socket.gethostname()}x.1+{_gone_pid()}-ghi"  # not this host's
    other_namespace = tmp_path / f"{prefix[:-1]}9+{_gone_pid()}-mno"  # a container with the same host name
    odd = tmp_path / f"{prefix}notapid-jkl"
    for d in (alive, other_host, other_namespace, odd):
        d.mkdir()
    a_file = tmp_path / f"{prefix}{_gone_pid()}-file"
    a_file.write_text("")

    cache = FrameCache(directory=tmp_path)
    made = cache.directory
    assert made.name.startswith(f"{prefix}{os.getpid()}-") and made.is_dir()
    assert not gone.exists()
    assert alive.is_dir() and other_host.is_dir() and other_namespace.is_dir() and odd.is_dir() and a_file.is_file()
    cache.close()
    assert not made.exists()
    assert remove_orphans(tmp_path) == []  # what is left belongs to a live process, another host or nobody
