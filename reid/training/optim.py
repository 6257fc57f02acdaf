"""Optimisers and epoch-based learning-rate schedules of the papers.

- SGD with momentum and step decay (adfta: lr 0.05 / 10 every 40 epochs; RCN/ASTPN: SGD 1e-3),
- Adam / AdamW with weight decay and multi-step decay (asanet: Adam 3e-4, decays at 100/250/350),
- linear warm-up from `warmup_factor * lr` over `warmup_epochs`,
- per-parameter-group learning rates: `optim.lr_mult` maps a parameter-name prefix to a multiplier (posetap trains
  its parts with different rates); the longest matching prefix wins.
The schedule is a pure function of the epoch, so a resumed run continues it exactly.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import torch
from torch import nn

from reid.config.schema import OptimConfig, SchedulerConfig
from reid.errors import ReidError


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Group trainable parameters by the longest `lr_mult` prefix that matches their name."""
    prefixes = sorted(cfg.lr_mult, key=len, reverse=True)
    groups: dict[float, list[nn.Parameter]] = {}
    matched: set[str] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        name = name.removeprefix("module.")  # DDP wrapper
        mult = 1.0
        for prefix in prefixes:
            if name.startswith(prefix):
                mult = cfg.lr_mult[prefix]
                matched.add(prefix)
                break
        groups.setdefault(mult, []).append(p)
    unused = set(cfg.lr_mult) - matched
    if unused:
        raise ReidError(f"optim.lr_mult prefixes match no parameter: {sorted(unused)}")
    return [{"params": ps, "lr": cfg.lr * m, "lr_mult": m} for m, ps in groups.items()]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(epoch: int, cfg: SchedulerConfig, total_epochs: int) -> float:
    """Multiplier of the base learning rate during `epoch` (0-based)."""
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        alpha = epoch / cfg.warmup_epochs
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    if cfg.name == "none":
        decay = 1.0
    elif cfg.name == "step":
        decay = cfg.gamma ** (epoch // cfg.step_size)
    elif cfg.name == "multistep":
        decay = cfg.gamma ** bisect_right(sorted(cfg.milestones), epoch)
    else:  # cosine
        decay = 0.5 * (1 + math.cos(math.pi * epoch / max(1, total_epochs)))
    return warm * decay


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig,
                    total_epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per epoch (after the epoch's updates)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg, total_epochs))
