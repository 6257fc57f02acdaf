"""The per-worker training loop, the same for every method and for in-process and Ray Train runs.

Per epoch: derive the RNG state from (seed, epoch, rank), iterate the epoch's batches (each a whole P x K or pair
batch), normalise inputs on the device, step, then step the LR schedule, validate on the held-out validation
identities (reid.data.validation, never the test split; features gathered from all ranks, metrics on rank 0), and
report metrics with a checkpoint every `train.checkpoint_every` epochs and at the end.
Every epoch is safe to repeat: after a hard worker failure Ray may restore the checkpoint one epoch before the latest
reported one, and the repeated epoch then reproduces the same batches and the same random draws.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import yaml

from reid.config.schema import ExperimentConfig
from reid.data.info import data_info
from reid.data.inputs import normalize_inputs
from reid.data.records import Manifest
from reid.evaluation.run.validate import Validator
from reid.models.factory import build_method
from reid.training.checkpoint import restore, save_state
from reid.training.faults import FaultInjector
from reid.training.metrics import MetricsExporter, ledger_counter, watch_line
from reid.training.optim import build_optimizer, build_scheduler
from reid.training.session import Session
from reid.training.step import StepTimes, memory_format, train_step
from reid.training.step_memory import check_first_step

log = logging.getLogger(__name__)


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Every random draw of the model (dropout, random init of new layers) in an epoch follows from this."""
    torch.manual_seed(((seed * 1_000_003) + epoch * 1009 + rank) % (2**63 - 1))


def run_worker(cfg: ExperimentConfig, manifest: Manifest, session: Session, *, run_name: str,
               export_metrics: bool = False, run_dir: Path | None = None) -> list[dict[str, Any]]:
    """Train `cfg` and return the per-epoch metrics this worker reported."""
    # the checkpoint first: it says which epoch the data starts at, and the decoding actors start while the model
    # is built (Session.start_data)
    resumed = session.resume_state()
    state, resume_from = resumed if resumed is not None else (None, None)
    start = int(state["next_epoch"]) if state is not None else 0
    if start < cfg.train.epochs:
        session.start_data(start)
    built = build_method(cfg, data_info(manifest, cfg.data), train=True)
    spec, model, objective = built.spec, built.model, built.objective
    device = session.device
    model = memory_format(model, cfg.train.channels_last, device)
    model = session.prepare_model(model)
    objective.to(device)
    optimizer = build_optimizer(model, cfg.optim)
    optimizers = {"model": optimizer}
    own = [p for p in objective.parameters() if p.requires_grad]
    if own:
        if objective.own_lr is not None:
            optimizers["objective"] = torch.optim.SGD(own, lr=objective.own_lr)
        else:
            optimizer.add_param_group({"params": own, "lr": cfg.optim.lr, "lr_mult": 1.0})
    scheduler = build_scheduler(optimizer, cfg.scheduler, cfg.train.epochs)
    scaler = None
    step_model = torch.compile(model) if cfg.train.compile else model

    best_map, last_map = -1.0, -1.0
    if state is not None:
        restore(state, model=model, objective=objective, optimizers=optimizers, scheduler=scheduler, scaler=scaler)
        best_map = float(state["best_map"])
        # session.console(): a plain print in a Ray Train worker reaches the driver twice (RaySession.console)
        if session.rank == 0 and start >= cfg.train.epochs:
            print(f"[reid] {run_name} has trained all its {cfg.train.epochs} epochs ({resume_from}): nothing to "
                  f"train; a longer run: `reid train --resume RUN train.epochs=N`", file=session.console(), flush=True)
        elif session.rank == 0:
            print(f"[reid] resuming {run_name} at epoch {start + 1}/{cfg.train.epochs} from {resume_from}",
                  file=session.console(), flush=True)

    validator = Validator(manifest, cfg, spec)
    faults = FaultInjector(cfg.train.inject_fault, run_dir, session.rank)
    exporter = MetricsExporter(run_name, session.rank, export_metrics, device=device, optimizer=optimizer,
                               run_dir=run_dir, resumed=resumed is not None, unreadable=ledger_counter(session))
    if export_metrics and session.rank == 0:
        print(watch_line(run_name), file=session.console(), flush=True)
    config_yaml = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    reported: list[dict[str, Any]] = []
    first_step = True
    for epoch in range(start, cfg.train.epochs):
        seed_epoch(cfg.seed, epoch, session.rank)
        model.train()
        objective.train()
        times, sums = StepTimes(), defaultdict(float)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        epoch_start = t_prev = time.perf_counter()
        for step, batch in enumerate(session.epoch_batches(epoch)):
            waited = time.perf_counter() - t_prev
            times.data += waited
            batch = normalize_inputs(batch, spec, device)
            faults.before_step(epoch + 1, step + 1, batch)
            if first_step:  # a batch too large for this worker's memory: a clear error, not the kernel's kill
                check_first_step(model, batch, device, session.local_world_size)
                first_step = False
            values = train_step(step_model, objective, batch, list(optimizers.values()), device=device,
                                amp=cfg.train.amp, grad_clip=cfg.train.grad_clip, scaler=scaler, times=times,
                                where=f"epoch {epoch + 1} step {step + 1}")
            for k, v in values.items():
                sums[k] += v
            now = time.perf_counter()
            exporter.step(values, waited, now - t_prev - waited, int(batch["pid"].shape[0]))
            t_prev = now
        elapsed = time.perf_counter() - epoch_start
        if times.steps == 0:
            raise RuntimeError(f"epoch {epoch + 1}: worker {session.rank} received no batches")
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            **{f"train/{k}": v / times.steps for k, v in sums.items()},
            "loss": sums["loss"] / times.steps,
            "clips_per_s": times.clips / max(elapsed, 1e-9),
            "data_wait_s": times.data / times.steps,
            "time/forward_s": times.forward / times.steps,
            "time/backward_s": times.backward / times.steps,
            "time/optimizer_s": times.optimizer / times.steps,
            "time/epoch_s": elapsed,
            "gpu_mem_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0,
        }
        last = epoch + 1 == cfg.train.epochs
        is_best = False
        if validator.enabled and ((epoch + 1) % cfg.train.eval_every == 0 or last):
            val = validator.run(model, session)  # held-out training identities, never the test split
            metrics.update(val)
            last_map = val["val/mAP"]
            is_best = last_map > best_map
            best_map = max(best_map, last_map)
        elif not validator.enabled:
            is_best = True  # data.val_identities=0: nothing to select on, the latest epoch is kept as the best
        metrics["best_mAP"] = best_map
        metrics["is_best"] = is_best
        # Ray keeps the top-k checkpoints by this score (and always the latest one).
        metrics["checkpoint_score"] = last_map if validator.enabled else float(epoch + 1)
        exporter.epoch_end(metrics, times.steps)
        writer = None
        if (epoch + 1) % cfg.train.checkpoint_every == 0 or last or is_best:
            next_epoch, best = epoch + 1, best_map

            def writer(directory: Path, next_epoch: int = next_epoch, best: float = best) -> None:
                save_state(directory, model=model, objective=objective, optimizers=optimizers,
                           scheduler=scheduler, scaler=scaler, next_epoch=next_epoch, best_map=best,
                           config_yaml=config_yaml)
        if session.rank == 0:
            print(format_epoch_line(metrics, cfg.train.epochs), file=session.console(), flush=True)
        session.report(metrics, writer)
        reported.append(metrics)
    exporter.close()
    return reported


def format_epoch_line(m: dict[str, Any], epochs: int) -> str:
    terms = " ".join(f"{k[6:]} {v:.3f}" for k, v in m.items() if k.startswith("train/") and k != "train/loss")
    line = (f"[reid] epoch {m['epoch']:>3}/{epochs}  loss {m['loss']:.4f} ({terms})  lr {m['lr']:.2e}  "
            f"{m['clips_per_s']:.1f} clips/s  data wait {m['data_wait_s'] * 1000:.0f} ms/step")
    return line + validation_part(m)


def validation_part(m: dict[str, Any]) -> str:
    """`  | val mAP 41.2 R1 55.5 mINP 12.8 (60 queries)` of an epoch's metrics, or "" without a validation.

    The query count tells a small validation split (a handful of queries: R1 0 beside mAP 46) from a broken one.
    """
    if "val/mAP" not in m:
        return ""
    part = f"  | val mAP {m['val/mAP']:.1f} R1 {m.get('val/R1', float('nan')):.1f}"
    if "val/mINP" in m:
        part += f" mINP {m['val/mINP']:.1f}"
    if "val/valid_queries" in m:
        n = int(m["val/valid_queries"])
        part += f" ({n} {'query' if n == 1 else 'queries'})"
    return part
