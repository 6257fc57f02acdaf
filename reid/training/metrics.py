"""Prometheus metrics of a training run, exported through Ray's metrics agent.

`ray.util.metrics` metrics appear on each node's metrics endpoint (and so in the Ray dashboard and Grafana) with a
`ray_` prefix. Names (as scraped):

| scraped name | type | tags | meaning |
|---|---|---|---|
| ray_reid_train_loss | gauge | run, term | mean of each loss term over the last epoch (`term="loss"` is the total) |
| ray_reid_train_lr | gauge | run | learning rate of the first parameter group |
| ray_reid_train_clips_per_second | gauge | run, rank | training throughput of a worker |
| ray_reid_train_data_wait_seconds | gauge | run, rank | mean seconds per step waiting for the next batch |
| ray_reid_train_gpu_memory_bytes | gauge | run, rank | peak GPU memory allocated in the epoch (0 on CPU) |
| ray_reid_train_epoch | gauge | run | last finished epoch (1-based) |
| ray_reid_train_steps_total | counter | run, rank | optimisation steps |
| ray_reid_val_map | gauge | run | validation mAP (0-100) |
| ray_reid_val_rank1 | gauge | run | validation rank-1 (0-100) |

Outside Ray (in-process runs) the exporter does nothing.
"""

from __future__ import annotations

from typing import Any

METRIC_NAMES = (
    "reid_train_loss", "reid_train_lr", "reid_train_clips_per_second", "reid_train_data_wait_seconds",
    "reid_train_gpu_memory_bytes", "reid_train_epoch", "reid_train_steps_total", "reid_val_map", "reid_val_rank1",
)


class MetricsExporter:
    def __init__(self, run: str, rank: int, enabled: bool) -> None:
        self.run, self.rank, self.enabled = run, str(rank), enabled
        if not enabled:
            return
        from ray.util.metrics import Counter, Gauge

        self.loss = Gauge("reid_train_loss", "loss term, epoch mean", tag_keys=("run", "term"))
        self.lr = Gauge("reid_train_lr", "learning rate", tag_keys=("run",))
        self.cps = Gauge("reid_train_clips_per_second", "training clips per second", tag_keys=("run", "rank"))
        self.wait = Gauge("reid_train_data_wait_seconds", "seconds per step waiting for data",
                          tag_keys=("run", "rank"))
        self.gpu = Gauge("reid_train_gpu_memory_bytes", "peak GPU memory", tag_keys=("run", "rank"))
        self.epoch = Gauge("reid_train_epoch", "last finished epoch", tag_keys=("run",))
        self.steps = Counter("reid_train_steps_total", "optimisation steps", tag_keys=("run", "rank"))
        self.val_map = Gauge("reid_val_map", "validation mAP", tag_keys=("run",))
        self.val_r1 = Gauge("reid_val_rank1", "validation rank-1", tag_keys=("run",))

    def epoch_end(self, metrics: dict[str, Any], steps: int) -> None:
        if not self.enabled:
            return
        run, rank = {"run": self.run}, {"run": self.run, "rank": self.rank}
        self.cps.set(metrics["clips_per_s"], tags=rank)
        self.wait.set(metrics["data_wait_s"], tags=rank)
        self.gpu.set(metrics["gpu_mem_bytes"], tags=rank)
        if steps:
            self.steps.inc(steps, tags=rank)
        if self.rank != "0":
            return
        for key, value in metrics.items():
            if key.startswith("train/"):
                self.loss.set(value, tags={**run, "term": key[len("train/"):]})
        self.lr.set(metrics["lr"], tags=run)
        self.epoch.set(metrics["epoch"], tags=run)
        if "val/mAP" in metrics:
            self.val_map.set(metrics["val/mAP"], tags=run)
            self.val_r1.set(metrics["val/R1"], tags=run)
