"""Live Prometheus metrics of a training run, exported through Ray's metrics agent.

`ray.util.metrics` metrics appear on each node's metrics endpoint (and so in the Ray dashboard and Grafana) with a
`ray_` prefix. Ray's agent drops a gauge about 20 s after a process last set it, so a background thread of each
worker re-sets every gauge every `period_s` (5 s) for the whole run: the panels have no gaps, and a gauge that
disappears means the worker process is gone. The training loop's hot path only adds the step's numbers to a window
under an uncontended lock (`step`, about a microsecond); no Ray call happens per step.

Windowed values (loss, clips/s, data wait, step time) are means over the steps of the last `period_s` window; when
a window had no step, clips/s is 0 and the others keep their last value (`last_step_timestamp` tells a stall).
The table of names, types and tags is `MetricSpec` below and docs/operations.md "Monitoring".

Outside Ray (in-process runs) the exporter does nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

PERIOD_S = 5.0
LEDGER_EVERY_S = 30.0  # how often rank 0 asks the run's ledger actor for the unreadable-tracklet count


@dataclass(frozen=True)
class MetricSpec:
    name: str       # as registered; scraped as ray_<name>
    kind: str       # gauge | counter
    tags: tuple[str, ...]
    ranks: str      # "all" ranks export it, or "0" only
    help: str


SPECS = (
    MetricSpec("reid_train_loss", "gauge", ("run", "term"), "0",
               "mean of each loss term over the steps of the last window (term=\"loss\" is the total)"),
    MetricSpec("reid_train_lr", "gauge", ("run",), "0", "learning rate of the first parameter group"),
    MetricSpec("reid_train_clips_per_second", "gauge", ("run", "rank"), "all",
               "training clips per second of step time (data wait + compute) in the last window; 0 if no step"),
    MetricSpec("reid_train_data_wait_share", "gauge", ("run", "rank"), "all",
               "share (0-1) of the training loop's time spent waiting for the next batch in the last window"),
    MetricSpec("reid_train_data_wait_seconds", "gauge", ("run", "rank"), "all",
               "mean seconds per step waiting for the next batch in the last window"),
    MetricSpec("reid_train_step_seconds", "gauge", ("run", "rank"), "all",
               "mean seconds per step from batch arrival to optimiser step done, in the last window"),
    MetricSpec("reid_train_gpu_utilization_percent", "gauge", ("run", "rank", "device"), "all",
               "GPU utilisation of the worker's device (NVML; 0 on CPU, device=\"cpu\")"),
    MetricSpec("reid_train_gpu_memory_bytes", "gauge", ("run", "rank", "device"), "all",
               "peak GPU memory allocated by the worker since its epoch started (0 on CPU)"),
    MetricSpec("reid_train_last_step_timestamp_seconds", "gauge", ("run", "rank"), "all",
               "unix time of the worker's last finished step (its start time before the first)"),
    MetricSpec("reid_train_epoch", "gauge", ("run",), "0", "last finished epoch (1-based; 0 before the first)"),
    MetricSpec("reid_train_steps_total", "counter", ("run", "rank"), "all", "optimisation steps"),
    MetricSpec("reid_train_restarts", "gauge", ("run",), "0",
               "times the run's workers started again from a checkpoint (Ray Train retries and --resume)"),
    MetricSpec("reid_data_unreadable_tracklets", "gauge", ("run",), "0",
               "training tracklets the run's decoders found unreadable so far (skipped)"),
    MetricSpec("reid_val_map", "gauge", ("run",), "0", "validation mAP (0-100) of the last evaluation"),
    MetricSpec("reid_val_rank1", "gauge", ("run",), "0", "validation rank-1 (0-100) of the last evaluation"),
    MetricSpec("reid_val_minp", "gauge", ("run",), "0", "validation mINP (0-100) of the last evaluation"),
)
METRIC_NAMES = tuple(s.name for s in SPECS)
STARTS_FILE = ".worker-starts"


@dataclass
class Window:
    """What the training loop added since the exporter last looked."""

    steps: int = 0
    clips: int = 0
    data_s: float = 0.0
    compute_s: float = 0.0
    last_step_at: float = 0.0
    loss: dict[str, float] | None = None


def window_values(w: Window) -> dict[str, float]:
    """The windowed gauges of a window with at least one step (means over its steps)."""
    busy = w.data_s + w.compute_s
    out = {"reid_train_clips_per_second": w.clips / busy if busy > 0 else 0.0,
           "reid_train_data_wait_share": w.data_s / busy if busy > 0 else 0.0,
           "reid_train_data_wait_seconds": w.data_s / w.steps,
           "reid_train_step_seconds": w.compute_s / w.steps}
    for term, total in (w.loss or {}).items():
        out[f"loss/{term}"] = total / w.steps
    return out


def gpu_utilization(device: torch.device) -> float:
    """Percent busy of `device` from NVML (torch's pynvml binding, else `nvidia-smi`); 0 on CPU or if unknown."""
    if device.type != "cuda":
        return 0.0
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # pynvml missing: ask nvidia-smi (runs in the exporter thread, never in the step)
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0.0
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        out = subprocess.run([smi, f"--id={index}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=3)
        return float(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return 0.0


def count_restarts(run_dir: Path | None, resumed: bool) -> int:
    """Record this start in `<run_dir>/.worker-starts` and return how many starts so far were from a checkpoint."""
    if run_dir is None:
        return int(resumed)
    path = run_dir / STARTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{time.time():.3f} {'resume' if resumed else 'fresh'}\n")
    return sum(1 for line in path.read_text().splitlines() if line.endswith(" resume"))


def _ray_factory(spec: MetricSpec):
    from ray.util.metrics import Counter, Gauge

    cls = Counter if spec.kind == "counter" else Gauge
    return cls(spec.name, spec.help, tag_keys=spec.tags)


class MetricsExporter:
    """One per worker. `step` from the loop; a daemon thread exports every `period_s` until `close` or until the
    thread that created the exporter (the training loop's) ends, so a crashed loop leaves no live gauges behind."""

    def __init__(self, run: str, rank: int, enabled: bool, *, device: torch.device | None = None,
                 optimizer: torch.optim.Optimizer | None = None, run_dir: Path | None = None,
                 resumed: bool = False, unreadable: Callable[[], int] | None = None, period_s: float = PERIOD_S,
                 factory: Callable[[MetricSpec], Any] | None = None) -> None:
        self.run, self.rank, self.enabled = run, str(rank), enabled
        if not enabled:
            return
        self.device = device or torch.device("cpu")
        self.optimizer, self.unreadable, self.period_s = optimizer, unreadable, period_s
        make = factory or _ray_factory
        self.metrics = {s.name: make(s) for s in SPECS if s.ranks == "all" or self.rank == "0"}
        self._lock = threading.Lock()
        self._window = Window(last_step_at=time.time())
        self._last: dict[str, float] = {}   # gauge name (or loss/<term>) -> last value, re-set every tick
        self._epoch: dict[str, float] = {"reid_train_epoch": 0.0}
        self._last_step_at = self._window.last_step_at
        self._unreadable, self._ledger_at = 0, -LEDGER_EVERY_S
        if self.rank == "0":
            self._epoch["reid_train_restarts"] = float(count_restarts(run_dir, resumed))
        self._owner = threading.current_thread()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reid-metrics-{rank}", daemon=True)
        self._thread.start()

    # ---- hot path -------------------------------------------------------------------------------------------
    def step(self, losses: dict[str, float], data_s: float, compute_s: float, clips: int) -> None:
        """One finished step: its loss terms, seconds waiting for the batch, seconds from batch to step done."""
        if not self.enabled:
            return
        with self._lock:
            w = self._window
            w.steps += 1
            w.clips += clips
            w.data_s += data_s
            w.compute_s += compute_s
            w.last_step_at = time.time()
            if self.rank == "0":
                if w.loss is None:
                    w.loss = dict(losses)
                else:
                    for k, v in losses.items():
                        w.loss[k] = w.loss.get(k, 0.0) + v

    # ---- per epoch ------------------------------------------------------------------------------------------
    def epoch_end(self, metrics: dict[str, Any], steps: int) -> None:
        """Epoch-level values (epoch, validation); exported at once and then kept fresh by the thread."""
        if not self.enabled or self.rank != "0":
            return
        with self._lock:
            self._epoch["reid_train_epoch"] = float(metrics["epoch"])
            for key, name in (("val/mAP", "reid_val_map"), ("val/R1", "reid_val_rank1"),
                              ("val/mINP", "reid_val_minp")):
                if key in metrics:
                    self._epoch[name] = float(metrics[key])
        self.export()

    def close(self) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    # ---- exporter thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            if not self._owner.is_alive():
                return
            self.export()

    def export(self) -> None:
        """Close the current window and set every gauge (called by the thread; callable directly in tests)."""
        with self._lock:
            w, self._window = self._window, Window(last_step_at=self._window.last_step_at)
            epoch = dict(self._epoch)
        now = time.monotonic()
        if self.rank == "0" and self.unreadable is not None and now - self._ledger_at >= LEDGER_EVERY_S:
            self._ledger_at = now
            try:
                self._unreadable = int(self.unreadable())
            except Exception:  # the ledger is gone at the end of a fit: keep the last count
                pass
        if w.steps:
            self._last.update(window_values(w))
            self._last_step_at = w.last_step_at
            self._inc("reid_train_steps_total", w.steps)
        else:
            self._last["reid_train_clips_per_second"] = 0.0
        rank = {"run": self.run, "rank": self.rank}
        dev = {**rank, "device": self.device.type}
        for name, value in self._last.items():
            if name.startswith("loss/"):
                self._set("reid_train_loss", value, {"run": self.run, "term": name[5:]})
            else:
                self._set(name, value, rank)
        self._set("reid_train_last_step_timestamp_seconds", self._last_step_at, rank)
        self._set("reid_train_gpu_utilization_percent", gpu_utilization(self.device), dev)
        mem = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else 0
        self._set("reid_train_gpu_memory_bytes", float(mem), dev)
        run = {"run": self.run}
        if self.rank == "0":
            for name, value in epoch.items():
                self._set(name, value, run)
            self._set("reid_data_unreadable_tracklets", float(self._unreadable), run)
            if self.optimizer is not None:
                self._set("reid_train_lr", float(self.optimizer.param_groups[0]["lr"]), run)

    def _set(self, name: str, value: float, tags: dict[str, str]) -> None:
        metric = self.metrics.get(name)
        if metric is not None:
            metric.set(value, tags=tags)

    def _inc(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        metric = self.metrics.get(name)
        if metric is not None:
            metric.inc(value, tags=tags or {"run": self.run, "rank": self.rank})


def ledger_counter(session: Any) -> Callable[[], int] | None:
    """How rank 0 counts the run's unreadable tracklets: the size of the run's ledger actor (a Ray Train session
    names it in its data; in-process runs have none)."""
    name = getattr(session, "_data", {}).get("ledger") if isinstance(getattr(session, "_data", None), dict) else None
    if not name:
        return None

    def count() -> int:
        import ray

        return len(ray.get(ray.get_actor(name).bad_records.remote(), timeout=10))

    return count


def dashboard_address() -> str:
    """The Ray dashboard's URL as the head recorded it ("" when not connected or unknown), in any process.

    `ray._private.worker.get_dashboard_url()` is right in a driver only: in a Ray worker process (a Train worker, a
    Tune trial) ray 2.60 builds it from the default port, and said `http://127.0.0.1:8265` for a cluster whose
    dashboard was on 8299 (2026-12-07). The head writes the URL to the GCS key-value store (`webui:url`, namespace
    `dashboard`), which every process of the cluster reads."""
    try:
        import ray
        from ray.experimental import internal_kv

        if not ray.is_initialized():
            return ""
        url = internal_kv._internal_kv_get("webui:url", namespace="dashboard")
        if url:
            url = url.decode() if isinstance(url, bytes) else str(url)
        else:  # no dashboard recorded: the driver's own view, never a worker's default
            from ray._private.worker import SCRIPT_MODE, get_dashboard_url, global_worker

            url = (get_dashboard_url() or "") if global_worker.mode == SCRIPT_MODE else ""
    except Exception:  # an older / newer Ray without these helpers
        return ""
    return url if not url or url.startswith("http") else f"http://{url}"


def watch_line(run: str) -> str:
    """The console line that says where to watch a Ray run live (printed once by rank 0; `run=""`: a sweep)."""
    where = dashboard_address()
    dashboard = f"Ray dashboard {where}" if where else "the Ray dashboard (port 8265 of the head)"
    subject = f"run '{run}'" if run else "the sweep's trials"
    return (f"[reid] watch {subject} live: {dashboard} (Train, Metrics); Grafana board "
            f"infra/grafana/reid-dashboard.json, alerts infra/prometheus/reid-alerts.yml (docs/operations.md, 7)")
