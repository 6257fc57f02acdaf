"""The one place the project starts or connects to Ray: every entry point (train, demo, tune, pose, bench, batch
inference) calls `init_ray`.

What it does, and why:

- **Address.** `ray.address` (or $RAY_ADDRESS, which `ray job submit` sets) connects to that cluster; otherwise a
  fresh local cluster is started with `address="local"`, never another cluster found through /tmp/ray on a shared
  machine. An address where nothing answers fails in one line after CONNECT_TIMEOUT_S (`check_reachable`); Ray's
  own `ray.init` retries it for minutes.
- **Workers use the driver's interpreter.** When the driver runs under `uv run`, Ray 2.60 (RAY_ENABLE_UV_RUN_RUNTIME_ENV,
  on by default) turns `ray.init` into `runtime_env={"py_executable": "uv run ... python", "working_dir": cwd}`
  (ray/_private/worker.py `_maybe_modify_runtime_env`, ray/_private/runtime_env/uv_runtime_env_hook.py): every worker
  start runs `uv run`, which re-syncs an environment per worker ("Uninstalled 1 package / Installed 1 package",
  "VIRTUAL_ENV ... does not match"), costs seconds per actor and uploads the working directory. The project's
  environment is already synced, so runs it starts turn that off; set RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 to ask for
  Ray's behaviour (`use_driver_python`).
- **Object store cap** (`ray.object_store_memory`): Ray's default is 30% of RAM, which on a small shared machine
  starves the training processes.
- **Fractional CPUs**: `--num-cpus 1.5` (Tune sizes trials in fractions); `ray.init(num_cpus=...)` takes an
  integer, so it is rounded down, to at least 1 (a cluster of 0 CPUs would leave every task pending).
- **Dashboard** on by default: Ray Train's PlacementGroupCleaner reads the controller's state through the State API
  that the dashboard serves; with `include_dashboard=False` ray 2.60 left the placement groups of finished
  Train-inside-Tune runs behind and later trials hung (shared/notes/ray-2.60-facts.md section 3.4). Jobs that run no
  Ray Train (pose estimation, the data benchmark) pass `dashboard=False` and start faster.
- **Start-up retry** (ray issue #65983): on an overloaded machine the dashboard agent can miss the raylet's fixed
  15 s port-file timeout, the raylet exits and `ray.init` raises "The current node timed out during startup".
- **Own GCS address in the raylet's environment** (`own_address_for_workers`): the PlacementGroupCleaner calls the
  State API with no address; where several Ray clusters run on one machine, auto-detection fails ("Found multiple
  active Ray instances") and finished runs' placement groups are never removed.
- **Token auth.** A local cluster gets token auth (what ray 2.59+ does by default) with RAY_AUTH_MODE set here, so
  Ray does not print its "Token authentication is enabled" warning on every start. Connecting to an explicit
  address, Ray only looks for a token for `address="auto"`; here a token that is available (RAY_AUTH_TOKEN,
  RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) turns token mode on for any address, unless RAY_AUTH_MODE is set.
- **Quiet console** (`quiet=True`, `quiet_libraries`): every line stays in the session's log files, only the console
  loses it. `log_to_driver` stays on because the epoch lines come from Ray Train's rank-0 worker, so each source of
  noise is turned down where it is emitted: the driver's `ray` logger at WARNING (start-up INFO lines); Ray Data's
  console handler at WARNING (reid/ray_data_logging.yaml); Ray Train's console at CRITICAL (`train_logging_config`:
  its INFO lines, "Reporting training result ..." for every epoch and rank, and transient time-outs it logs with a
  traceback), and each Train worker quiets the one Train logger that setting misses as it starts
  (`reid.training.ray_session.quiet_train_reports`); no PreemptionWatcher on a local cluster; and one line of Ray
  core advice dropped from the driver's console (`CONSOLE_SKIP`). One line says where Ray's logs are
  (`ray_log_dir`); Ray Train's are under `train/`.
- **SIGTERM** (`stop_on_sigterm`): `ray.init` installs Ray's C++ failure-signal handler, which answers a SIGTERM
  (`ray job stop`, a pod ending) with a stack dump on stderr ("*** SIGTERM received ... PC: @ ... (unknown)") before
  Python exits; after it the driver's SIGTERM raises `reid.errors.Terminated` instead, which unwinds as a Ctrl-C
  does, and the CLI says in one line that the command was stopped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reid.progress import on_terminal

if TYPE_CHECKING:  # typing only: this module is imported by entry points before any config is loaded
    from reid.config.schema import RayConfig

UV_RUN_ENV = "RAY_ENABLE_UV_RUN_RUNTIME_ENV"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
DATA_LOGGING_ENV = "RAY_DATA_LOGGING_CONFIG"
COLOR_PREFIX_ENV = "RAY_COLOR_PREFIX"
DATA_LOGGING_YAML = Path(__file__).with_name("ray_data_logging.yaml")
# Lines of Ray's own that the driver does not print (they stay in the worker's log file), with why:
CONSOLE_SKIP = (
    # core_worker.cc logs at ERROR, for every actor created with restarts and constructor arguments passed by
    # reference: Ray Data's actor pools always pass their map transformer that way (ray issue #53727). It is advice
    # about Ray Data's own design, the same on every run, and nothing this run can act on.
    r"has constructor arguments in the object store and max_restarts > 0",
    # the raylet, when `reid serve` ends: Serve's shutdown kills its controller while the controller's own graceful
    # shutdown task is still queued for it; nothing is lost (the replicas stopped before)
    r"Task ServeController.graceful_shutdown failed",
    # Ray Train's PlacementGroupCleaner, when a driver stops mid-fit (Ctrl-C, `ray job stop`): the dashboard that
    # serves the State API goes down before it, and it says it "continues to monitor" as the cluster ends
    r"Failed to query Ray Train Controller actor state",
    # Ray Data's INFO and WARNING lines of every dataset execution, from the workers of a cluster that `reid` did
    # not start: their processes keep their own Ray Data logging config (reid/ray_data_logging.yaml reaches the
    # workers of a local cluster only); seen on a 2-node cluster, 2026-12-07, four lines per Train worker and fit
    r"Starting execution of Dataset \S+\. Full logs are in",
    r"Execution plan of Dataset \S+: ",
    r"Progress bars disabled\. To enable, set",
    r"Dataset \S+ execution finished in [\d.]+ seconds",
)
# Ray's start-up failures are bare Exceptions / timeouts; bad arguments (ValueError, TypeError) are not retried.
_RETRIED = (Exception, TimeoutError, ConnectionError, RuntimeError)
_SIGTERM: dict[str, bool] = {}  # set when a SIGTERM arrived after init_ray (stop_on_sigterm)
# the log folder of the local cluster this process started (local_cluster_started); "tried": start_local_ray ran
_LOCAL_CLUSTER: dict[str, Any] = {}


def init_ray(ray_cfg: RayConfig | None = None, *, num_cpus: float | None = None, address: str | None = None,
             dashboard: bool = True, quiet: bool = True, attempts: int = 5, train: bool = False) -> None:
    """Connect to `ray_cfg.address` / `address` / $RAY_ADDRESS, or start a local cluster (module docstring).

    num_cpus: CPUs of a local cluster (rounded down, at least 1; None = this machine's). Does nothing when Ray is already
    initialised in this process (a Tune trial, a test's cluster). train: this process runs Ray Train fits (the
    line naming Ray's log folder then names Ray Train's too).
    """
    import ray

    if ray.is_initialized():
        return
    use_driver_python()
    target = cluster_address(ray_cfg, address)
    logging_kwargs: dict[str, Any] = {"log_to_driver": True}
    if quiet:
        logging_kwargs["logging_level"] = logging.WARNING
        quiet_libraries(local=not target)
    if target:
        check_reachable(target)
        use_token_if_available()
        ray.init(address=target, **logging_kwargs)
    else:
        if AUTH_MODE_ENV not in os.environ:
            token_mode_on()
        start_local_ray(attempts=attempts, num_cpus=max(1, math.floor(num_cpus)) if num_cpus else None,
                        object_store_memory=ray_cfg.object_store_memory if ray_cfg else None,
                        include_dashboard=dashboard, **logging_kwargs)
    stop_on_sigterm()
    if quiet:
        print(logs_line(ray_log_dir(), train), flush=True)


def cluster_address(ray_cfg: RayConfig | None = None, address: str | None = None) -> str | None:
    """The cluster `init_ray` connects to: `address`, `ray_cfg.address` or $RAY_ADDRESS; None: it starts a local
    cluster on this machine."""
    return address or (ray_cfg.address if ray_cfg else None) or os.environ.get("RAY_ADDRESS") or None


def logs_line(log_dir: Path | None, train: bool) -> str:
    """The line that says where Ray's own log files are (`log_dir` None: a remote cluster's, on its head node)."""
    where = f"{log_dir}" if log_dir else "the head node's /tmp/ray/session_latest/logs"
    if log_dir and train:
        where += f" (Ray Train: {log_dir / 'train'})"
    return f"[reid] Ray's own logs: {where}"


def quiet_libraries(local: bool) -> None:
    """Ray Data's and Ray Train's console noise off at the source (module docstring); the user's own settings of
    these variables win. Ray Train reads RAY_TRAIN_* in the driver when a fit starts and hands them to its
    controller; Ray Data reads RAY_DATA_LOGGING_CONFIG in each process that runs a dataset (the local cluster's
    workers inherit this environment; a remote cluster's workers keep their own)."""
    os.environ.setdefault(DATA_LOGGING_ENV, str(DATA_LOGGING_YAML))
    if not on_terminal(sys.stdout):
        # the workers' lines reach the driver as "(pid=...) line" with the prefix in ANSI colour: escape codes in a
        # log file, a CI log or `ray job logs > file`; Ray reads the variable at each print
        os.environ.setdefault(COLOR_PREFIX_ENV, "0")
    if os.environ.get(COLOR_PREFIX_ENV) == "0":
        plain_repeat_notes()
    if local:
        # The PreemptionWatcher polls for nodes being drained (cloud spot instances); a local cluster has none, and
        # creating the actor logs a core-worker ERROR line about its constructor arguments.
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    skip_console_lines(CONSOLE_SKIP)


def plain_repeat_notes() -> None:
    """Ray's note after a line its deduplication repeated, `[repeated 6x across cluster]`, is green on any output
    (ray/_private/ray_logging `_color`): escape codes in a log file (seen in a sweep's log, 2026-12-07). Plain where
    the prefixes are (RAY_COLOR_PREFIX=0). Private to Ray: on another version, nothing happens."""
    from ray._private import ray_logging

    if callable(getattr(ray_logging, "_color", None)):
        ray_logging._color = str


def skip_console_lines(patterns: tuple[str, ...]) -> None:
    """Add `patterns` to Ray's RAY_DEDUP_LOGS_SKIP_REGEX (the driver's filter of worker lines), which Ray reads once
    at import; the deduplicators it built from it are updated here. Without log dedup (RAY_DEDUP_LOGS=0) Ray
    applies no skip filter at all."""
    import re

    from ray._private import ray_logging

    user = os.environ.get("RAY_DEDUP_LOGS_SKIP_REGEX")
    skip = re.compile("|".join(([f"(?:{user})"] if user else []) + list(patterns)))
    for dedup in (ray_logging.stdout_deduplicator, ray_logging.stderr_deduplicator):
        dedup.skip_re = skip


def train_logging_config(quiet: bool = True):
    """Ray Train's `RunConfig(logging_config=...)`: quiet runs keep Ray Train's console to CRITICAL. Its INFO lines
    ("Reporting training result ..." per epoch and rank, worker-group start-up), and the transient time-outs it
    logs with a traceback and then carries on from (a GetTimeoutError stopping the PlacementGroupCleaner, "Failed
    to send resource request"), all still go to `<session>/logs/train/`; a run that fails raises in the driver,
    where the command prints one line for it."""
    import ray.train

    return ray.train.LoggingConfig(log_level="CRITICAL" if quiet else "INFO")


CONNECT_TIMEOUT_S = 20.0  # how long a cluster's address may refuse connections before the command gives up


def check_reachable(address: str, timeout_s: float | None = None) -> None:
    """Fail in one line when nothing answers at a cluster's `host:port` (or `ray://host:port`) within `timeout_s`.
    `ray.init` itself retries an unreachable GCS for minutes, printing only core-worker warnings ("Failed to connect
    to GCS at address ..."). A Jobs API / dashboard address (`http://head:8265`, what `ray job submit --address`
    takes) is refused with what to use instead; `auto` is left to Ray."""
    import time

    from reid.errors import ReidError

    if address.startswith(("http://", "https://")):
        raise ReidError(f"ray.address / RAY_ADDRESS is {address}, a Jobs API (dashboard) address: submit the "
                        f"command with `ray job submit --address {address} -- reid ...` (docs/operations.md, 5), or "
                        f"give the cluster's GCS address, HOST:6379")
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    host = host.strip("[]")
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.5, min(5.0, timeout_s))):
                return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if time.monotonic() >= deadline:
                raise ReidError(f"cannot reach the Ray cluster at {address} ({reason}) within {timeout_s:.0f} s: is "
                                f"it running (`ray status --address {hostport}` on one of its nodes)? The address "
                                f"comes from ray.address or $RAY_ADDRESS") from None
            if not said:
                print(f"[reid] waiting up to {timeout_s:.0f} s for the Ray cluster at {address} ({reason})",
                      flush=True)
                said = True
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def start_local_ray(attempts: int = 3, **kwargs: Any) -> None:
    """`ray.init(address="local", ...)` of a fresh cluster, retried when the node fails to come up (issue #65983)."""
    import ray

    kwargs.setdefault("include_dashboard", True)
    use_driver_python()
    _LOCAL_CLUSTER["tried"] = True  # a node that fails to start leaves its logs in the newest session (failure.py)
    for attempt in range(1, attempts + 1):
        try:
            with own_address_for_workers():
                ray.init(address="local", **kwargs)
            _LOCAL_CLUSTER["session"] = ray_log_dir()
            return
        except Exception as exc:
            if type(exc) not in _RETRIED or attempt == attempts:
                raise
            print(f"[reid] Ray node failed to start (attempt {attempt}/{attempts}, overloaded machine?); retrying",
                  flush=True)
            ray.shutdown()


@contextlib.contextmanager
def restored_signal_handlers(*signums: int) -> Iterator[None]:
    """In the main thread: the handlers of `signums` as they are now, put back when the block ends, however it ends
    (Ray Train's and Ray Tune's fits install their own and leave them: reid/training/interrupt.py, tune/interrupt.py).
    Elsewhere nothing is touched; a handler not set from Python (getsignal None) cannot be put back."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    before = {s: signal.getsignal(s) for s in signums} if main else {}
    try:
        yield
    finally:
        for signum, handler in before.items():
            if handler is not None:
                signal.signal(signum, handler)


def stop_on_sigterm() -> None:
    """In the main thread: a SIGTERM raises `Terminated` (module docstring), replacing the handler `ray.init`
    installed. Elsewhere (a Tune trial's thread) nothing changes."""
    import signal
    import threading

    from reid.errors import Terminated

    def terminated(signum: int, frame: Any) -> None:
        _SIGTERM["received"] = True  # Ray Train's fit answers the interrupt with a KeyboardInterrupt of its own
        raise Terminated(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)


def quiet_teardown() -> None:
    """In a Ray worker process that Ray stops with SIGTERM (a Tune trial's actor once its trial is done, the decoding
    actors and Train workers of a fit that stops, ...): Ray's handler raises SystemExit wherever the interpreter is,
    and when that is a garbage-collection callback or a `__del__` Python prints `Exception ignored in: <function
    WeakSet...>` (or `VideoReader.__del__`) and a traceback of Ray's handler to the console (in 1 of 5 smoke
    ablations on the 2-core machine; a Ctrl-C of `reid train` in CI, 2026-12-07). Such an exit is already ignored;
    this drops its report and passes every other unraisable exception to the hook that was there. Every actor
    class and worker function of the project calls it first."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, SystemExit):
            previous(unraisable)

    if getattr(previous, "_reid_quiet_teardown", False):
        return
    hook._reid_quiet_teardown = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def flush_worker_logs() -> None:
    """Print now the worker lines Ray's log deduplication still holds, which it would otherwise print when the driver
    disconnects, after the command's last output. A line that a second worker repeats within 5 s is held back
    (ray/_private/ray_logging: `LogDeduplicator`); an ablation's table ended with a trial's "no ImageNet weights"
    warning below it (2026-12-07). Private to Ray: on another version, nothing happens."""
    try:
        from ray._private import ray_logging, worker
    except ImportError:
        return
    try:
        ignore_prefix = worker._should_ignore_worker_log_prefix(worker.global_worker)
        for stream, dedup in ((sys.stdout, ray_logging.stdout_deduplicator),
                              (sys.stderr, ray_logging.stderr_deduplicator)):
            for leftover in dedup.flush():
                worker.print_worker_logs(leftover, stream, ignore_prefix)
    except (AttributeError, TypeError):
        return


_MEMORY_KILL = re.compile(r"(\d+) worker\(s\) were killed due to the node running low on memory")
_NODE_MEMORY = re.compile(r"was ([\d.]+ ?GB) used / ([\d.]+ ?GB) limit")


def memory_kill(text: str) -> str | None:
    """`Ray's memory monitor killed 4 worker(s): the node was at 22.57GB of 23.54GB`, when `text` holds Ray's
    message of an out-of-memory kill (an OutOfMemoryError, or a Train worker's failed health check that quotes it),
    else None."""
    kill = _MEMORY_KILL.search(text)
    if not kill:
        return None
    node = _NODE_MEMORY.search(text, kill.end())
    return (f"Ray's memory monitor killed {kill.group(1)} worker(s)"
            + (f": the node was at {node.group(1)} of {node.group(2)}" if node else ""))


def sigterm_received() -> bool:
    """Whether the handler of `stop_on_sigterm` has fired in this process."""
    return bool(_SIGTERM.get("received"))


def local_start_tried() -> bool:
    """Whether this process tried to start a local cluster (`start_local_ray`), whether or not the node came up."""
    return bool(_LOCAL_CLUSTER.get("tried"))


def local_cluster_started() -> bool:
    """Whether this process is connected to a local cluster it started (`start_local_ray`): one without an
    autoscaler, whose resources never grow (reid.training.capacity)."""
    import ray

    here = ray_log_dir() if ray.is_initialized() else None
    return here is not None and _LOCAL_CLUSTER.get("session") == here


def use_driver_python() -> bool:
    """Turn off Ray's `uv run` worker environment unless the user set RAY_ENABLE_UV_RUN_RUNTIME_ENV; returns
    whether it stays on.

    Ray reads the variable once, when `ray._private.ray_constants` is imported (the import of `ray`), and
    `ray.init` reads the module attribute; so both are set: the attribute for this process, the variable for
    processes started from it (a job's driver, a `reid` subprocess of a worker).
    """
    os.environ.setdefault(UV_RUN_ENV, "0")
    enabled = os.environ[UV_RUN_ENV].strip().lower() in ("1", "true", "yes", "on")
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = enabled
    return enabled


def use_token_if_available() -> bool:
    """Token mode for a client of a cluster that has token auth: RAY_AUTH_MODE=token when a token is available and
    the mode is unset (Ray itself does this only for address="auto"). Returns whether token mode is on."""
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is not None:
        return mode.strip().lower() == "token"
    if not token_available():
        return False
    token_mode_on()
    return True


def token_mode_on() -> None:
    """RAY_AUTH_MODE=token for this process and the ones it starts. Ray caches its config (RayConfig, C++) at
    import: without the refresh this driver would start a token-mode cluster and then talk to it without a token
    ("InvalidAuthToken: Authentication token is missing or incorrect"). The same two steps as Ray's own
    `authentication_token_setup._enable_token_auth`."""
    from ray._raylet import Config

    os.environ[AUTH_MODE_ENV] = "token"
    Config.initialize("")


def token_available() -> bool:
    """RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (Ray's lookup order)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    return path.is_file() and bool(path.read_text().strip())


def ray_log_dir() -> Path | None:
    """The logs folder of this process's Ray session (`<session>/logs`; Ray Train writes under `logs/train`), or
    None when Ray is not initialised here (or the driver is a Ray Client)."""
    import ray

    if not ray.is_initialized():
        return None
    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return None
    return Path(node.get_logs_dir_path())


@contextlib.contextmanager
def own_address_for_workers() -> Iterator[None]:
    """Start the cluster on a chosen GCS port with RAY_ADDRESS pointing at it in the raylet's environment.

    Workers inherit the raylet's environment, so Ray Train's PlacementGroupCleaner finds its own cluster even where
    several run on one machine. The driver's environment is restored afterwards (a later local cluster in this
    process must not connect to this one).
    """
    from ray._private.services import get_node_ip_address

    with socket.socket() as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    with environment({"RAY_GCS_SERVER_PORT": str(port), "RAY_ADDRESS": f"{get_node_ip_address()}:{port}"}):
        yield


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ inside the block; each variable back as it was (or unset) after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
