"""A DDP warning that is not one: gradient strides that differ from the bucket's only in dimensions of size 1.

PyTorch's DDP reducer compares each gradient's strides with its bucket view's, dimension by dimension, and on any
difference prints (once per process, 4 lines on the driver's console per Train worker)

    Grad strides do not match bucket view strides. ... This is not an error, but may impair performance.
    grad.sizes() = [1, 64, 1, 1], strides() = [64, 1, 64, 64]
    bucket_view.sizes() = [1, 64, 1, 1], strides() = [64, 1, 1, 1]

A 1x1 convolution whose input has channels-last strides (a batched matrix product transposed and reshaped into
[N, C, H, W]: ASA-Net's ASRE value map, the non-local block's output) gets its weight [O, I, 1, 1]'s gradient with
strides (I, 1, I, I) where the weight has (I, 1, 1, 1). A stride of a dimension of size 1 is never used to address
memory: the two layouts are the same bytes, and DDP's copy of such a gradient into its bucket is that of a
contiguous block. Seen with `reid demo --method asanet` (2 Train workers on CPU, 2026-12-07). Such warnings are
dropped in Train workers; any other stride mismatch (a real layout difference, which does cost a strided copy each
step) still prints.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

_MESSAGE = "Grad strides do not match bucket view strides"
_SHAPES = re.compile(r"grad\.sizes\(\) = \[([\d, ]*)\], strides\(\) = \[([\d, ]*)\]\s*"
                     r"bucket_view\.sizes\(\) = \[([\d, ]*)\], strides\(\) = \[([\d, ]*)\]")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def benign_stride_mismatch(message: str) -> bool:
    """Whether `message` is DDP's stride warning for a gradient and bucket view of the same sizes whose strides
    differ only where the size is 1 (module docstring). False for any other text, or a warning it cannot read."""
    if _MESSAGE not in message:
        return False
    found = _SHAPES.search(message)
    if found is None:
        return False
    grad_sizes, grad_strides, view_sizes, view_strides = (_ints(g) for g in found.groups())
    if grad_sizes != view_sizes or not len(grad_strides) == len(view_strides) == len(grad_sizes):
        return False
    return all(size == 1 or a == b for size, a, b in zip(grad_sizes, grad_strides, view_strides, strict=True))


def drop_benign_stride_warnings() -> None:
    """Leave out of this process's warnings output DDP's stride warnings that `benign_stride_mismatch` recognises;
    every other warning is shown as before. Idempotent."""
    shown = warnings.showwarning
    if getattr(shown, "_reid_benign_strides", False):
        return

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if benign_stride_mismatch(str(message)):
            return
        shown(message, category, filename, lineno, file, line)

    show._reid_benign_strides = True  # type: ignore[attr-defined]
    warnings.showwarning = show
