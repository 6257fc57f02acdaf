"""`ray job submit` for the project's jobs: train, evaluate, tune, prepare, pose.

    python -m jobs.submit train --address http://127.0.0.1:8265 -- baseline --config baseline-synthetic \
        ray.storage_path=/shared/runs data.root=/shared/data/synthetic-demo ray.num_workers=2
    python -m jobs.submit evaluate --dry-run -- /shared/runs/baseline-default-synthetic-s0

It runs (and with --dry-run only prints) the plain `ray job submit` command that docs/operations.md spells out:

    ray job submit --address URL --runtime-env jobs/runtime_env/<kind>.yaml --working-dir <project root>
        --entrypoint-num-cpus N [--entrypoint-resources '{"reid_driver": 1}'] [--entrypoint-num-gpus G]
        -- <python> -m reid.cli <command> <args...>

- working dir: the project's source is uploaded (minus .gitignore'd files and the YAML's excludes) and becomes the
  job's current directory, so `python -m reid.cli` runs the submitted code; the cluster provides the dependencies.
- placement: Ray schedules the entrypoint like a task, on ANY node with room for its resources, not necessarily
  the head. The drivers of train, tune and pose jobs host the Ray Train controller / the Tune loop, whose loss
  kills the job, so they ask for one `reid_driver` (a custom resource only head nodes advertise: cluster/*.yaml,
  the KubeRay heads, jobs/local_cluster.py) and no CPU, and run on the head, never on a spot worker. evaluate and
  prepare do real work in the driver (CPUs the head does not offer) and are cheap to rerun. `--driver-anywhere`
  drops the pin, for a cluster whose head has no `reid_driver`.
- `<python>`: the entrypoint runs in a shell where a bare `python` is whatever comes first on that node's PATH
  (ray 2.60: `ModuleNotFoundError: No module named 'ray'` when Ray lives in a venv). So the entrypoint names the
  interpreter: `--python`, default `$REID_JOB_PYTHON`, else the project image's `/app/.venv/bin/python`
  (infra/Dockerfile), the same on every node of every cluster shape; for a cluster started from a checkout
  (`cluster/local.sh`) pass that checkout's `.venv/bin/python`.
- paths: the job runs in a temporary copy of the working dir that is deleted with the session, so every path
  argument must be absolute (or a URI) on storage the cluster shares, and training jobs must name
  `ray.storage_path`.
- auth: `ray job submit` needs `RAY_AUTH_MODE=token` and the token (`RAY_AUTH_TOKEN`, or the file
  `~/.ray/auth_token` / `RAY_AUTH_TOKEN_PATH`); this command sets `RAY_AUTH_MODE=token` unless it is set.
- Ctrl-C while it follows the job's logs stops following, not the job (as `ray job submit` does): one line names
  the job and the commands that follow it again or stop it. The job gets an id from here when none is given
  (`reid-<kind>-<time>-<6 hex>`), so that line can name it; `ray job submit` alone printed "Aborted!" and this
  command a Python traceback (2026-12-07).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from reid.errors import ReidError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_ENV_DIR = Path(__file__).resolve().parent / "runtime_env"
IMAGE_PYTHON = "/app/.venv/bin/python"
DRIVER_RESOURCE = "reid_driver"  # advertised by head nodes only; tune.runner and jobs.local_cluster use the same name


@dataclass(frozen=True)
class JobKind:
    """How one kind of job is submitted.

    command: the `reid` subcommand; num_cpus / num_gpus: what the entrypoint (the driver process) reserves, on top of
    what its Ray Train workers, Tune trials and Ray Data actors ask for themselves; path_options: options whose value
    is a path; path_keys: dotted config overrides that are paths; positional_path: the first positional argument
    is a path (a run directory); needs_storage: the job writes a run, so `ray.storage_path` must be given;
    pinned: the driver takes a `reid_driver` slot (and `num_cpus` is 0), so it runs on the head.
    """

    command: str
    num_cpus: float
    num_gpus: float = 0.0
    pinned: bool = False
    path_options: tuple[str, ...] = ()
    path_keys: tuple[str, ...] = ("ray.storage_path", "data.root", "data.manifest", "train.init_from")
    positional_path: bool = False
    needs_storage: bool = False

    def runtime_env(self, kind: str) -> Path:
        return RUNTIME_ENV_DIR / f"{kind}.yaml"


JOBS: dict[str, JobKind] = {
    # the driver only builds the dataset plan and hosts the Train controller (which Ray Train puts on the driver's
    # node): pinned to the head; workers ask for their own CPUs / GPUs
    "train": JobKind("train", num_cpus=0.0, pinned=True, path_options=("--resume", "--init-from", "--audit-log"),
                     needs_storage=True),
    # features come from Ray Data actors (GPUs when ray.use_gpu); the driver loads the model and scores
    "evaluate": JobKind("eval", num_cpus=1.0, path_options=("--out",), positional_path=True),
    # the Tune driver, pinned to the head; every trial reserves its own resources (tune.runner.trial_resources)
    "tune": JobKind("tune", num_cpus=0.0, pinned=True, path_options=("--out", "--from-results", "--results-md")),
    # decoding / packing runs in the driver process
    "prepare": JobKind("prepare", num_cpus=2.0, path_options=("--root", "--out", "--csv", "--attributes", "--splits")),
    # Keypoint R-CNN runs in Ray Data actors (--gpus-per-worker); the driver only plans and writes
    "pose": JobKind("pose", num_cpus=0.0, pinned=True, path_options=("--manifest", "--out", "--weights")),
}


def _is_remote_or_absolute(value: str) -> bool:
    return "://" in value or Path(value).is_absolute()


def check_paths(kind: str, args: list[str]) -> None:
    """Raise ReidError naming every relative path in `args` (and a missing `ray.storage_path` for training)."""
    spec = JOBS[kind]
    problems: list[str] = []
    positional_seen = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, _, inline = arg.partition("=")
            if name in spec.path_options:
                value = inline if inline else (args[i + 1] if i + 1 < len(args) else "")
                if not _is_remote_or_absolute(value):
                    problems.append(f"{name} {value}")
                i += 1 if inline else 2
                continue
            i += 1
            continue
        if "=" in arg:
            key, value = arg.split("=", 1)
            if key in spec.path_keys and value and not _is_remote_or_absolute(value):
                problems.append(arg)
        elif spec.positional_path and not positional_seen:
            positional_seen = True
            if not _is_remote_or_absolute(arg):
                problems.append(arg)
        i += 1
    if problems:
        raise ReidError(f"{kind} job: relative paths {problems}; a job runs in a temporary copy of the working "
                        f"directory, so give absolute paths on storage the cluster shares (or URIs)")
    if spec.needs_storage and "--resume" not in args and not any(a.startswith("ray.storage_path=") for a in args):
        raise ReidError(f"{kind} job: pass ray.storage_path=/shared/path (absolute, shared by the cluster's nodes, "
                        f"or s3://...); the default 'runs' would land in the job's temporary working directory")
    if kind == "tune" and args[:1] in (["search"], ["ablation"]) and not any(a.split("=")[0] == "--out" for a in args):
        raise ReidError("tune job: pass --out /shared/path (absolute, shared by the cluster's nodes); the default "
                        "'runs/...' would land in the job's temporary working directory")


def entrypoint_resources(kind: str, pin: bool = True) -> str | None:
    """The `--entrypoint-resources` JSON of a kind (None when its driver is not pinned)."""
    return json.dumps({DRIVER_RESOURCE: 1}) if pin and JOBS[kind].pinned else None


def build_command(kind: str, reid_args: list[str], *, address: str, python: str, submission_id: str | None = None,
                  no_wait: bool = False, num_gpus: float | None = None,
                  working_dir: Path = PROJECT_ROOT, pin: bool = True) -> list[str]:
    """The `ray job submit` argv of a `kind` job running `reid <command> <reid_args>`."""
    if kind not in JOBS:
        raise ReidError(f"unknown job kind '{kind}'; expected one of {sorted(JOBS)}")
    spec = JOBS[kind]
    check_paths(kind, reid_args)
    runtime_env = spec.runtime_env(kind)
    if not runtime_env.is_file():
        raise ReidError(f"missing runtime env file {runtime_env}")
    from jobs.local_cluster import ray_cli

    cmd = [ray_cli(), "job", "submit", "--address", address, "--runtime-env", str(runtime_env),
           "--working-dir", str(working_dir)]
    resources = entrypoint_resources(kind, pin)
    cpus = spec.num_cpus if resources or not spec.pinned else 0.25  # unpinned: a sliver, as before the pin
    cmd += ["--entrypoint-num-cpus", f"{cpus:g}"]
    if resources:
        cmd += ["--entrypoint-resources", resources]
    gpus = spec.num_gpus if num_gpus is None else num_gpus
    if gpus:
        cmd += ["--entrypoint-num-gpus", f"{gpus:g}"]
    if submission_id:
        cmd += ["--submission-id", submission_id]
    if no_wait:
        cmd.append("--no-wait")
    return [*cmd, "--", python, "-m", "reid.cli", spec.command, *reid_args]


def default_address() -> str:
    return (os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
            or "http://127.0.0.1:8265")


def submit_env() -> dict[str, str]:
    """The environment of `ray job submit`: token mode on unless the user set RAY_AUTH_MODE."""
    return {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}


def jobs_api_unreachable(address: str, timeout_s: float = 10.0) -> str | None:
    """Why nothing answers at a Jobs API address (None: something does; any HTTP status counts, a 401 included, which
    `ray job submit` then explains). `ray job submit` itself answers an unreachable address with a traceback."""
    import ssl
    import urllib.error
    import urllib.request

    if not address.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(address.rstrip("/") + "/api/version", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):  # a TLS server answered (its certificate is `ray job submit`'s business)
            return None
        return getattr(reason, "strerror", None) or str(reason)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.submit", description=__doc__.split("\n\n")[0],
                                     epilog="Everything after `--` goes to the reid command.")
    parser.add_argument("kind", choices=sorted(JOBS),
                        help="the reid command the job runs: train, evaluate (reid eval), tune, prepare or pose")
    parser.add_argument("--address", default=default_address(),
                        help="dashboard / Jobs API URL (default $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS, else "
                             "http://127.0.0.1:8265)")
    parser.add_argument("--python", default=os.environ.get("REID_JOB_PYTHON", IMAGE_PYTHON),
                        help=f"the project's interpreter ON THE CLUSTER (default $REID_JOB_PYTHON, else the "
                             f"image's {IMAGE_PYTHON}; a checkout's cluster: its .venv/bin/python)")
    parser.add_argument("--driver-anywhere", action="store_true",
                        help="do not pin the driver to the head (for a cluster without the reid_driver resource)")
    parser.add_argument("--submission-id", help="job id (default: reid-<kind>-<time>-<6 hex>)")
    parser.add_argument("--no-wait", action="store_true", help="return once submitted (follow with ray job logs)")
    parser.add_argument("--entrypoint-num-gpus", type=float, help="GPUs for the driver process (default per kind)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    reid_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, reid_args = argv[:split], argv[split + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    job_id = args.submission_id or new_job_id(args.kind)
    try:
        cmd = build_command(args.kind, reid_args, address=args.address, python=args.python,
                            submission_id=job_id, no_wait=args.no_wait, num_gpus=args.entrypoint_num_gpus,
                            pin=not args.driver_anywhere)
    except ReidError as exc:
        print(f"jobs.submit: error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    unreachable = jobs_api_unreachable(args.address)
    if unreachable:
        print(f"jobs.submit: error: no Ray Jobs API answers at {args.address} ({unreachable}): is the cluster up, and "
              f"is this its dashboard address, port 8265 (`ray dashboard cluster/<shape>.yaml &` forwards it from a "
              f"launcher cluster, `kubectl port-forward svc/reid-head-svc 8265:8265 &` from KubeRay; "
              f"docs/operations.md, 2-3)?",
              file=sys.stderr)
        return 2
    return follow(cmd, job_id, args.address)


def new_job_id(kind: str) -> str:
    """`reid-train-20261207-070110-3fa9c1`: unique, sortable, and known here before Ray has it."""
    return f"reid-{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def follow(cmd: list[str], job_id: str, address: str) -> int:
    """Run `ray job submit` (which follows the job's logs unless --no-wait); its status. A Ctrl-C reaches it too
    (one process group): it stops following and exits, and the job runs on (module docstring)."""
    proc = subprocess.Popen(cmd, env=submit_env())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
        where = "" if address == "http://127.0.0.1:8265" else f" --address {address}"
        print(f"jobs.submit: stopped following job {job_id}; once submitted, it runs on in the cluster: "
              f"`ray job logs{where} -f {job_id}` follows it again, `ray job stop{where} {job_id}` stops it",
              file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
