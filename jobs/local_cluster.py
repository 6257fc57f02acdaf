"""A Ray head node on this machine, with the project's security defaults; `cluster/local.sh` and the ops tests use it.

Defaults and why:
- token authentication ON: the head is started with `RAY_AUTH_MODE=token` and the token of `~/.ray/auth_token`
  (created if missing, as `ray get-auth-token --generate` does). Without the variable, ray 2.60's `ray start --head`
  enables tokens only if a token file already exists, so a fresh machine would start an open cluster.
- the dashboard and the Jobs API bind 127.0.0.1 (`dashboard_host`); reach them from elsewhere over an SSH tunnel.
  Opting out (`--dashboard-host 0.0.0.0`) keeps the token check, but tokens travel in clear text over HTTP.
- the metrics endpoint (`--metrics-export-port`) binds ALL interfaces and has no authentication (ray 2.60): it only
  serves metric values, but firewall it like the GCS port.
- the head advertises the custom resource `reid_driver` (DRIVER_SLOTS of it): job drivers and Tune trial drivers
  ask for one (`jobs/submit.py`, `tune/runner.py`), so they run on the head, as on the cloud shapes (cluster/*.yaml).

`python -m jobs.local_cluster start|token|stop` is the command-line side (see docs/operations.md). Tests use
`LocalHead(..., block=True)`: `ray start --head --block` stays in the foreground, so stopping that one process stops
exactly this cluster (plain `ray stop` would stop every Ray process of the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_METRICS_PORT = 8080
DEFAULT_GCS_PORT = 6379
DRIVER_RESOURCE = "reid_driver"  # the same name as tune.runner.DRIVER_RESOURCE and jobs.submit
DRIVER_SLOTS = 100               # concurrent drivers (jobs + Tune trials) the head takes


def ray_cli() -> str:
    """The `ray` executable of this interpreter's environment (never whatever `ray` comes first on PATH)."""
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else "ray"


def default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def ensure_token() -> str:
    """The cluster token: `RAY_AUTH_TOKEN`, else `RAY_AUTH_TOKEN_PATH`, else ~/.ray/auth_token (created, mode 600)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or default_token_path())
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))  # what ray's own generator writes: 256 random bits, hex
    return path.read_text().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HeadPorts:
    gcs: int = DEFAULT_GCS_PORT
    dashboard: int = DEFAULT_DASHBOARD_PORT
    metrics: int = DEFAULT_METRICS_PORT
    client: int = 10001
    agent: int = 52365

    @classmethod
    def free(cls) -> HeadPorts:
        """Unused ports, so that a test cluster never collides with another cluster on the machine."""
        return cls(gcs=free_port(), dashboard=free_port(), metrics=free_port(), client=free_port(),
                   agent=free_port())


@dataclass
class LocalHead:
    """A head node started with `ray start --head`; `start()` returns once the dashboard answers."""

    temp_dir: Path | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    ports: HeadPorts = field(default_factory=HeadPorts)
    dashboard_host: str = "127.0.0.1"
    object_store_memory: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    block: bool = False
    resources: dict[str, float] = field(default_factory=lambda: {DRIVER_RESOURCE: DRIVER_SLOTS})
    process: subprocess.Popen | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dashboard}"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.ports.gcs}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    def env(self) -> dict[str, str]:
        """The environment of `ray start` and so of every process of the node. RAY_ADDRESS names this head: Ray
        Train's PlacementGroupCleaner calls the State API with no address, which fails ("Found multiple active Ray
        instances") where another cluster runs on the same machine, leaving finished runs' placement groups."""
        from ray._private.services import get_node_ip_address

        return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_ADDRESS": f"{get_node_ip_address()}:{self.ports.gcs}",
                **self.extra_env}

    def args(self) -> list[str]:
        p = self.ports
        args = [ray_cli(), "start", "--head", f"--port={p.gcs}", f"--dashboard-host={self.dashboard_host}",
                f"--dashboard-port={p.dashboard}", f"--metrics-export-port={p.metrics}",
                f"--ray-client-server-port={p.client}", f"--dashboard-agent-listen-port={p.agent}",
                "--log-style=record"]
        if self.num_cpus is not None:
            args.append(f"--num-cpus={self.num_cpus}")
        if self.num_gpus is not None:
            args.append(f"--num-gpus={self.num_gpus}")
        if self.object_store_memory:
            args.append(f"--object-store-memory={self.object_store_memory}")
        if self.resources:
            args.append(f"--resources={json.dumps(self.resources)}")
        if self.temp_dir is not None:
            args.append(f"--temp-dir={self.temp_dir}")
        if self.block:
            args.append("--block")
        return args

    def start(self, timeout_s: float = 180.0) -> LocalHead:
        token = ensure_token()
        if not self.block:
            subprocess.run(self.args(), env=self.env(), check=True)
            wait_for_dashboard(self.dashboard_url, token, timeout_s)
            return self
        assert self.temp_dir is not None, "a blocking head needs its own temp_dir"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.temp_dir / "head.log", "wb")
        self.process = subprocess.Popen(self.args(), env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        try:
            while "Ray runtime started" not in self.log_text():
                if self.process.poll() is not None:
                    raise RuntimeError(f"ray start --head exited with {self.process.returncode}:\n"
                                       f"{self.log_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the head did not start in {timeout_s:.0f}s:\n{self.log_text()[-3000:]}")
                time.sleep(0.5)
            wait_for_dashboard(self.dashboard_url, token, max(5.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def log_text(self) -> str:
        path = (self.temp_dir or Path(".")) / "head.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, grace_s: float = 20.0) -> None:
        """Stop this head only: SIGTERM the blocking `ray start` (its exit handler stops the node's processes),
        then SIGKILL whatever still runs from this cluster's temp dir."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.temp_dir is not None:
            kill_processes_mentioning(str(self.temp_dir))


def wait_for_dashboard(url: str, token: str, timeout_s: float) -> None:
    """Poll `<url>/api/version` with the token until it answers 200."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(f"{url}/api/version", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"the dashboard at {url} did not answer in {timeout_s:.0f}s ({last})")


def kill_processes_mentioning(marker: str) -> list[int]:
    """SIGKILL every process of this user whose command line contains `marker` (a cluster's temp dir); returns
    their ids. Ray's workers rename themselves (`ray::...`) but die with their raylet, whose command line keeps it."""
    killed = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.local_cluster",
                                     description="A Ray head on this machine with token auth and a loopback dashboard.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start the head (ray start --head) in the background")
    start.add_argument("--num-cpus", type=int, help="CPUs the head offers (default: Ray's count of this machine's)")
    start.add_argument("--num-gpus", type=int, help="GPUs the head offers (default: Ray's count of this machine's)")
    start.add_argument("--dashboard-port", type=int, default=DEFAULT_DASHBOARD_PORT,
                       help=f"dashboard and Jobs API port (default {DEFAULT_DASHBOARD_PORT})")
    start.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                       help=f"Prometheus metrics export port (default {DEFAULT_METRICS_PORT})")
    start.add_argument("--port", type=int, default=DEFAULT_GCS_PORT,
                       help=f"GCS port (workers join here; default {DEFAULT_GCS_PORT})")
    start.add_argument("--dashboard-host", default="127.0.0.1",
                       help="bind address of the dashboard and Jobs API (opt-out: 0.0.0.0; keep the token on)")
    sub.add_parser("token", help="print the token that job submitters need (creates it if missing)")
    sub.add_parser("stop", help="ray stop: stops EVERY Ray process of this user on this machine")
    return parser


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "token":
        print(ensure_token())
        return 0
    if args.cmd == "stop":
        return subprocess.call([ray_cli(), "stop"])
    head = LocalHead(num_cpus=args.num_cpus, num_gpus=args.num_gpus, dashboard_host=args.dashboard_host,
                     ports=HeadPorts(gcs=args.port, dashboard=args.dashboard_port, metrics=args.metrics_port))
    head.start()
    if not re.fullmatch(r"127\.0\.0\.1|localhost", args.dashboard_host):
        print(f"WARNING: the dashboard and Jobs API listen on {args.dashboard_host}:{args.dashboard_port}; anyone "
              f"who can reach it AND has the token can run code on this machine.", file=sys.stderr)
    print(f"""
Ray head started with token authentication.
  dashboard + Jobs API  {head.dashboard_url}   (open it: the page asks for the token once)
  metrics (Prometheus)  {head.metrics_url}   (all interfaces, no auth: firewall it)
  workers join with     ray start --address=<this host's IP>:{args.port}   (with RAY_AUTH_MODE=token and the token)
Submit jobs with:
  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$(python -m jobs.local_cluster token)
  python -m jobs.submit train --address {head.dashboard_url} --python {sys.executable} -- baseline \\
      ray.storage_path=$PWD/runs ...""")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
