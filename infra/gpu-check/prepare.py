"""Build `.gpu-carry/` on the development machine for a lent GPU machine (the `device` tool of the workplace).

The GPU machine starts bare from an image that has PyTorch (and, on 2026-12-04, pyarrow, numpy, pytest, ...) but not
this project's environment, reaches no package index, and takes at most 64 MiB of working tree and carried files.
This writes into `.gpu-carry/` (git-ignored; name it in the device call's `carry`):

  wheels/      the project's packages that image lacked, at the versions of uv.lock, for CPython --python (default
               3.12, the image's on 2026-12-04), manylinux x86_64: ray (repacked: native binaries stripped, its
               Java jars, RLlib, LLM, Serve and the dashboard's web client left out, RECORD rewritten), pydantic and
               its parts, simplejpeg.
  bench-data/  the synthetic set `reid bench gpu` renders itself when it can (`reid.bench.gpu.SYNTH`), rendered here
               because PyAV does not fit, as a JPEG store (Parquet shards with their frame index, keypoints).
               The H.264 set and decord do not fit beside Ray (about 65 MiB in all, 2026-12-06): the video store's
               GPU numbers are those of 2026-12-04 (docs/gpu/README.md).
  PYTAG        the CPython tag the wheels are for; infra/gpu-check/run.sh refuses another interpreter.

Then, in the device call: `bash infra/gpu-check/run.sh` with carry [".gpu-carry"] (docs/gpu/README.md).

    python3 infra/gpu-check/prepare.py [--python 3.12] [--also optuna,faiss-cpu]

`--also` carries more of the lock's packages, for an image that lacks them (run.sh's session.log names the module
whose import failed).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CARRY = ROOT / ".gpu-carry"
LIMIT = 64 * 1024 * 1024  # what may travel: working tree + carried paths
PACKAGES = ["ray", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "simplejpeg"]
RAY_DROP = ("ray/jars/", "ray/rllib/", "ray/llm/", "ray/serve/", "ray/dashboard/client/")
RAY_STRIP = ("ray/_raylet.so", "ray/core/src/ray/gcs/gcs_server", "ray/core/src/ray/raylet/raylet")


def lock_versions(names: list[str]) -> dict[str, str]:
    """{package: version} from uv.lock, so that the GPU machine runs what the suite ran."""
    text = (ROOT / "uv.lock").read_text()
    found = dict(re.findall(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text))
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"prepare: {missing} not in uv.lock")
    return {n: found[n] for n in names}


def download(specs: list[str], python: str, dest: Path) -> None:
    tag = python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           python, "--implementation", "cp", "--abi", f"cp{tag}", "--platform", "manylinux2014_x86_64",
           "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64", "--platform",
           "manylinux2010_x86_64", "-d", str(dest), *specs]
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(f"prepare: pip download failed for {' '.join(specs)}")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(wheel: Path, drop: tuple[str, ...], strip: tuple[str, ...]) -> None:
    """Rewrite `wheel` in place without the members under `drop`, with the members in `strip` run through
    `strip --strip-unneeded`, and a RECORD that lists what is left."""
    out = io.BytesIO()
    record_name = None
    lines = []
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            name = info.filename
            if name.endswith(".dist-info/RECORD"):
                record_name = name
                continue
            if name.startswith(drop) or name.endswith("/"):
                continue
            data = src.read(info)
            if name in strip:
                with tempfile.NamedTemporaryFile() as tmp:
                    tmp.write(data)
                    tmp.flush()
                    subprocess.run(["strip", "--strip-unneeded", tmp.name], check=True)
                    data = Path(tmp.name).read_bytes()
            zi = zipfile.ZipInfo(name, date_time=info.date_time)
            zi.external_attr = info.external_attr  # keeps the executables executable
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, data)
            lines.append(_record_line(name, data))
        if record_name is None:
            raise SystemExit(f"prepare: {wheel.name} has no RECORD")
        dst.writestr(record_name, "\n".join([*lines, f"{record_name},,"]) + "\n")
    wheel.write_bytes(out.getvalue())


def bench_data(dest: Path) -> None:
    """The bench's synthetic set, as `reid bench gpu` would render it, rendered with the project's environment."""
    code = ("import shutil, sys; from pathlib import Path; from reid.bench.gpu import render_synthetic; "
            "from reid.bench.data import store_copy; from reid.data.records import read_manifest; "
            "dest = Path(sys.argv[1]); tmp = dest.parent / 'render'; src = render_synthetic(tmp); "
            "out = store_copy(read_manifest(src), 'jpeg', tmp).root; "
            "shutil.move(str(out), str(dest)); shutil.rmtree(tmp)")
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit("prepare: no .venv here; run `python3 -m uv sync --frozen` first")
    if subprocess.run([str(python), "-c", code, str(dest)], cwd=ROOT).returncode != 0:
        raise SystemExit("prepare: rendering the synthetic set failed")


def tree_bytes() -> int:
    """Bytes of what travels besides the carry: tracked files and untracked files git does not ignore."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", default="3.12", help="the GPU machine's CPython, major.minor (3.12 on 2026-12-04)")
    p.add_argument("--also", default="", help="more of uv.lock's packages to carry (comma-separated)")
    args = p.parse_args(argv)
    versions = lock_versions(PACKAGES + [n.strip() for n in args.also.split(",") if n.strip()])
    shutil.rmtree(CARRY, ignore_errors=True)
    wheels = CARRY / "wheels"
    wheels.mkdir(parents=True)
    download([f"{n}=={v}" for n, v in versions.items()], args.python, wheels)
    for wheel in wheels.glob("ray-*.whl"):
        repack(wheel, RAY_DROP, RAY_STRIP)
    bench_data(CARRY / "bench-data")
    (CARRY / "PYTAG").write_text(f"cp{args.python.replace('.', '')}\n")
    carry = sum(f.stat().st_size for f in CARRY.rglob("*") if f.is_file())
    total = carry + tree_bytes()
    for f in sorted(wheels.iterdir()):
        print(f"  {f.stat().st_size / 2**20:6.1f} MiB  {f.name}")
    print(f".gpu-carry: {carry / 2**20:.1f} MiB; with the working tree {total / 2**20:.1f} MiB of the 64 MiB that "
          f"may travel")
    if total > LIMIT:
        print("prepare: too large to travel; move large untracked files out of the working tree", file=sys.stderr)
        return 1
    print('next: the device call  bash infra/gpu-check/run.sh  with carry [".gpu-carry"]')
    return 0


if __name__ == "__main__":
    sys.exit(main())
