"""A training batch too large for the memory it has is an error before the first step, not the kernel's kill.

On CPU, the activations a forward keeps for its backward grow with the batch: P x K clips x T frames x H x W. A
batch that did not fit (`data.seq_len=1000` typed for 100, a GPU recipe in-process on a laptop) had the kernel's
OOM killer end the process after it had taken every byte of the machine: `Killed`, exit status 137, nothing else
(`reid train baseline --config baseline-synthetic data.seq_len=1000 ray.num_workers=0`, 24 GB machine,
2026-12-08). CUDA raises its own OutOfMemoryError, with a message; CPU memory gives no such chance.

Before the fit's first step, `check_first_step` runs the model's forward on the batch on PyTorch's meta device (the
same operations on tensors that have shapes but no memory: 5-60 ms for the six methods' CPU recipes) and adds up
the bytes of every tensor autograd saves for the backward (`torch.autograd.graph.saved_tensors_hooks`; each storage
once, parameters left out: they exist already). On the real tensors the same count is the same to the byte for every
method (tests/training/test_step_memory.py), and a step's peak was 1.06-1.19 x that count above the memory in use
before it (baseline T=100, asanet and fcnta T=60, CPU, 2026-12-08). So a batch whose saved tensors exceed
BUDGET_SHARE of the memory available to the worker (/proc/meminfo's MemAvailable, or what the cgroup's limit
leaves if that is less, shared by the workers on the node) is refused with the numbers and what to lower. The
real model, its buffers (BatchNorm's running statistics) and the random number generator are left untouched: the
forward runs through `torch.func.functional_call` on meta copies of the parameters and buffers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid.errors import ReidError

log = logging.getLogger(__name__)

BUDGET_SHARE = 0.8  # of the memory available to the worker, for the saved tensors (module docstring)
_GB = 1e9


def _meminfo_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes (None where the file or the field is missing: not Linux)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_left(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes the process's memory cgroup still allows (its limit less what it uses, reclaimable page cache not
    counted as used); None without a limit. cgroup v2 (memory.max) or v1 (memory/memory.limit_in_bytes)."""
    limit = _read_int(root / "memory.max")
    if limit is not None:
        used = _read_int(root / "memory.current")
        if used is None:
            return None
        return max(0, limit - (used - _stat(root / "memory.stat", "inactive_file")))
    v1 = root / "memory"
    limit = _read_int(v1 / "memory.limit_in_bytes")
    if limit is None or limit >= 1 << 60:  # v1 writes a huge number for "no limit"
        return None
    used = _read_int(v1 / "memory.usage_in_bytes")
    if used is None:
        return None
    return max(0, limit - (used - _stat(v1 / "memory.stat", "total_inactive_file")))


def available_bytes() -> int | None:
    """Memory this process can still take: MemAvailable, or the cgroup's room if smaller; None where unknown."""
    known = [v for v in (_meminfo_available(), _cgroup_left()) if v is not None]
    return min(known) if known else None


def describe_batch(batch: dict[str, torch.Tensor]) -> str:
    """'32 clips x 1000 frames of 128x64' from the batch's frames [B, T, C, H, W] (or its clip count alone)."""
    frames = batch.get("frames")
    if isinstance(frames, torch.Tensor) and frames.dim() == 5:
        b, t, _, h, w = frames.shape
        return f"{b} clips x {t} frames of {h}x{w}"
    pid = batch.get("pid")
    return f"{int(pid.shape[0])} clips" if isinstance(pid, torch.Tensor) else "this batch"


class _SavedBytes:
    """saved_tensors_hooks that add up the bytes of the storages autograd saves (each once; parameters left out)."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: set[int] = set()

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_leaf and tensor.requires_grad:  # a parameter: its memory is taken already
            return tensor
        storage = tensor.untyped_storage()
        key = storage._cdata  # the storage itself (a meta storage has no data pointer to tell them apart)
        if key not in self._seen:
            self._seen.add(key)
            self.total += storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor


def saved_bytes(model: nn.Module, batch: dict[str, Any], *, device: torch.device | str = "meta") -> int:
    """Bytes the forward of `model` (in its current mode) on `batch` saves for the backward, counted on `device`:
    "meta" (no memory, nothing of `model` changes) or the batch's own device (a real forward; tests compare them)."""
    counter = _SavedBytes()
    if str(device) != "meta":
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
            model(batch)
        return counter.total
    state = {name: p.detach().to("meta").requires_grad_(p.requires_grad) for name, p in model.named_parameters()}
    state.update({name: b.to("meta") for name, b in model.named_buffers()})
    inputs = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    rng = torch.random.get_rng_state()
    try:
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
            torch.func.functional_call(model, state, (inputs,))
    finally:
        torch.random.set_rng_state(rng)
    return counter.total


def check_first_step(model: nn.Module, batch: dict[str, Any], device: torch.device, workers: int) -> int | None:
    """Raise a ReidError when the step on `batch` cannot fit in this worker's share of the node's memory (module
    docstring); returns the saved bytes counted, or None where nothing was checked: on CUDA (its OutOfMemoryError
    says what happened), where the available memory is unknown, where a model's forward has no meta form, or with
    $REID_STEP_MEMORY_GUARD=0."""
    if device.type != "cpu" or os.environ.get("REID_STEP_MEMORY_GUARD", "1") == "0":
        return None
    available = available_bytes()
    if available is None:
        return None
    module = getattr(model, "module", model)  # DDP's wrapped module: its forward alone, no gradient sync
    try:
        need = saved_bytes(module, batch)
    except Exception as exc:  # noqa: BLE001 - an operation without a meta kernel: the step runs unchecked
        log.debug("step memory not counted (%s: %s)", type(exc).__name__, exc)
        return None
    workers = max(1, workers)
    if need > BUDGET_SHARE * available / workers:
        share = f"{available / _GB:.1f} GB available" + (f", shared by {workers} workers on this node"
                                                         if workers > 1 else "")
        raise ReidError(
            f"one training step of this batch ({describe_batch(batch)}) keeps {need / _GB:.1f} GB of activations "
            f"for its backward (counted before the step) and needs about 1.1-1.2 times that at its peak, against "
            f"{share}: lower data.seq_len, data.ids_per_batch x data.tracklets_per_id or data.height x data.width, "
            f"run fewer workers per node, or train on a GPU (ray.use_gpu=true); REID_STEP_MEMORY_GUARD=0 skips "
            f"this check")
    return need
