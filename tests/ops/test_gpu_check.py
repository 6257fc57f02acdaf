"""infra/gpu-check: the carry a lent GPU machine gets (prepare.py) and the script it runs there (run.sh).

What can be checked without a GPU machine: a repacked wheel drops what it should, keeps its members' modes and lists
exactly what it holds in RECORD (pip and run.sh read it as a plain zip); the versions come from uv.lock; run.sh
refuses a carry built for another interpreter, or none, with one line and status 2. (The whole path, carried Ray
included, ran on the development machine with a cp311 carry, 2026-12-06: docs/gpu/README.md.)"""

import base64
import hashlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_check_prepare", ROOT / "infra/gpu-check/prepare.py")
prepare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare)


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data, mode in [("pkg/__init__.py", b"x = 1\n", 0o644), ("pkg/bin/server", b"\x7fELF...", 0o755),
                                 ("pkg/jars/big.jar", b"j" * 100, 0o644), ("pkg/web/index.html", b"<html>", 0o644)]:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            z.writestr(info, data)
        z.writestr("pkg-1.0.dist-info/RECORD", "pkg/__init__.py,sha256=wrong,1\npkg/jars/big.jar,,\n")
    return path


def test_repack_drops_members_keeps_modes_and_rewrites_the_record(tmp_path):
    wheel = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl")
    prepare.repack(wheel, drop=("pkg/jars/", "pkg/web/"), strip=())
    with zipfile.ZipFile(wheel) as z:
        names = sorted(z.namelist())
        assert names == ["pkg-1.0.dist-info/RECORD", "pkg/__init__.py", "pkg/bin/server"]
        assert (z.getinfo("pkg/bin/server").external_attr >> 16) & 0o777 == 0o755
        record = z.read("pkg-1.0.dist-info/RECORD").decode().splitlines()
        for line in record[:-1]:  # every member but RECORD itself, with its sha256 (urlsafe, unpadded) and size
            name, digest, size = line.split(",")
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data)
        assert [r.split(",")[0] for r in record] == ["pkg/__init__.py", "pkg/bin/server", "pkg-1.0.dist-info/RECORD"]


def test_versions_come_from_the_lock():
    versions = prepare.lock_versions(["ray", "simplejpeg"])
    assert versions["ray"].startswith("2.60.")
    with pytest.raises(SystemExit, match="not in uv.lock"):
        prepare.lock_versions(["no-such-package"])


@pytest.mark.parametrize("pytag", ["cp99", None])
def test_run_refuses_a_carry_for_another_interpreter_or_none(tmp_path, pytag):
    carry = tmp_path / "carry"
    if pytag:
        (carry / "wheels").mkdir(parents=True)
        (carry / "PYTAG").write_text(pytag + "\n")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "CARRY": str(carry), "PYTHON": sys.executable,
           "SITE": str(tmp_path / "site")}
    res = subprocess.run(["bash", str(ROOT / "infra/gpu-check/run.sh")], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2
    lines = [line for line in res.stdout.splitlines() if line.startswith("[gpu-check")]
    assert len(lines) == 1, res.stdout
    assert ("the carried wheels are cp99: rerun prepare.py --python X.Y" in lines[0]) if pytag else \
        ("run infra/gpu-check/prepare.py here and carry .gpu-carry" in lines[0])
    assert not (tmp_path / "site").exists() or not any((tmp_path / "site").iterdir())  # nothing installed
