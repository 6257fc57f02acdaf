"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import logging


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", action="append", default=[], metavar="FILE",
                        help="YAML config file (a path or URI) or packaged config name (repeatable; later files "
                             "win)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides, e.g. model.sigma=0.3 data.seq_len=8 ray.num_workers=2")


OWN_LOGGERS = ("reid", "tune", "jobs")


def setup_logging(verbose: bool = False) -> None:
    """The console log of a command: this project's loggers (OWN_LOGGERS) at INFO, every other library at WARNING,
    so that a library's INFO line (matplotlib's "generated new fontManager" on a fresh machine, botocore's "Found
    credentials ...") does not land between the command's own lines; `verbose`: everything at DEBUG."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def gpu_recipe_on_cpu(cfg) -> str | None:
    """A line for a GPU-sized recipe (256x128 clips: the paper recipes of the ResNet methods) about to
    train on this machine's CPUs: no GPU here, none asked for (`ray.use_gpu`), no cluster to send the work to.
    A user who types `reid train baseline` on a laptop gets 120 epochs of ResNet-50; say which recipe fits."""
    from reid.ray_runtime import cluster_address

    if cfg.ray.use_gpu or cluster_address(cfg.ray):
        return None
    if cfg.data.height < 256:
        return None
    depth = cfg.model.get("depth")
    import torch

    if torch.cuda.is_available():
        return None
    epochs = cfg.train.epochs
    size = (f"ResNet-{depth}, " if depth is not None else "") + (
        f"{cfg.data.height}x{cfg.data.width} clips of T={cfg.data.seq_len}, {epochs} epoch{'' if epochs == 1 else 's'}")
    return (f"[reid] note: {cfg.method}'s recipe here is sized for a GPU ({size}) and this machine has none: on "
            f"CPUs, `--config {cfg.method}-synthetic` (the demo's scale) or `--config {cfg.method}-synth-cpu`; on a "
            f"GPU node, ray.use_gpu=true")
