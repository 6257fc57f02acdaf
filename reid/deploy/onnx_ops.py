"""Exportable forms of the operations that the legacy ONNX exporter (opset 17) has no form for.

- `aten::xlogy` (adfta's frame entropy): a custom symbolic, xlogy(x, y) = where(x == 0, 0, x * log y), torch's
  definition for every y that is not NaN (adfta's y are probabilities).
- `adaptive_max_pool2d` (astpn's spatial pyramid): `reid.models.layers.spp` pools explicit bins while exporting.
- `_upsample_bilinear2d_aa` (posetap's antialiased resize of the pose maps to the feature-map size): `FixedResize`,
  the same resize as a fixed linear map for the fixed pose-map size, applied before the model so that the model's
  own resize is skipped (it only resizes maps whose size differs from its feature maps').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_REGISTERED = False


def register_symbolics(opset: int) -> None:
    """Register the custom ONNX symbolics above for `opset` (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return

    def xlogy(g, x, y):  # noqa: ANN001, ANN202 - the exporter's symbolic signature
        zero = g.op("Constant", value_t=torch.tensor(0.0))
        prod = g.op("Mul", x, g.op("Log", y))
        return g.op("Where", g.op("Equal", x, zero), zero, prod)

    torch.onnx.register_custom_op_symbolic("aten::xlogy", xlogy, opset)
    _REGISTERED = True


class FixedResize(nn.Module):
    """maps [..., h0, w0] -> [..., h, w]: bilinear (align_corners=False, antialias=True) resize as a linear map.

    The resize is linear in the map, out = M x with M [h*w, h0*w0] (column k = the resize of the k-th unit map),
    so for a fixed input size it is one matmul: exportable in any opset and equal to `F.interpolate` up to float
    summation order. It is the resize `reid.models.layers.part_maps.CompositePartMaps.forward` applies.
    """

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
        super().__init__()
        self.in_size, self.out_size = (int(in_size[0]), int(in_size[1])), (int(out_size[0]), int(out_size[1]))
        n = self.in_size[0] * self.in_size[1]
        units = torch.eye(n, dtype=torch.float64).reshape(n, 1, *self.in_size)
        cols = F.interpolate(units, size=self.out_size, mode="bilinear", align_corners=False, antialias=True)
        self.register_buffer("matrix", cols.reshape(n, -1).float(), persistent=False)   # M^T: [h0*w0, h*w]

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        lead = maps.shape[:-2]  # reshape with the traced sizes: unflatten(-1, ...) exports with constant ones
        return (maps.float().reshape(*lead, -1) @ self.matrix).reshape(*lead, *self.out_size)


def pose_map_sizes(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(pose-map size, feature-map size) that the model's `CompositePartMaps` sees on `batch`; None without one."""
    from reid.models.layers.part_maps import CompositePartMaps

    parts = [m for m in model.modules() if isinstance(m, CompositePartMaps)]
    if not parts:
        return None
    seen: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def hook(_module: nn.Module, args: tuple) -> None:
        seen.append((tuple(args[0].shape[-2:]), tuple(args[1])))

    handle = parts[0].register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(batch)
    finally:
        handle.remove()
    return seen[0] if seen else None
