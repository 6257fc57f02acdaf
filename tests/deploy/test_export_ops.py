"""The exportable forms of the operations the legacy ONNX exporter lacks (reid.deploy.onnx_ops and the export path
of reid.models.layers.spp), each against the torch operation it replaces, on CPU and through onnxruntime."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reid.models.layers.spp import SpatialPyramidPooling, adaptive_bins, adaptive_max_pool2d_bins

# (H, W) of feature maps: divisible and not by the levels 8, 4, 2, 1, smaller than a level (overlapping bins),
# the RCN conv3 maps of a 56x40 crop (21x17) and of a 64x32 crop
SIZES = [(8, 8), (21, 17), (16, 8), (13, 11), (5, 3), (1, 1), (9, 4)]
LEVELS = (8, 4, 2, 1)


def _naive_adaptive_max(x: torch.Tensor, m: int) -> torch.Tensor:
    """adaptive max pooling from its definition, one output cell at a time: bin i of a side of n cells is
    [floor(i*n/m), ceil((i+1)*n/m))."""
    h, w = x.shape[-2:]
    out = torch.empty(*x.shape[:-2], m, m)
    for i in range(m):
        for j in range(m):
            r0, r1 = math.floor(i * h / m), math.ceil((i + 1) * h / m)
            c0, c1 = math.floor(j * w / m), math.ceil((j + 1) * w / m)
            out[..., i, j] = x[..., r0:r1, c0:c1].amax(dim=(-2, -1))
    return out


@pytest.mark.parametrize("size", SIZES)
def test_adaptive_bins_equal_torch_adaptive_max_pool(size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *size, generator=g)
    for m in LEVELS:
        want = F.adaptive_max_pool2d(x, m)
        assert torch.equal(_naive_adaptive_max(x, m), want)  # the definition above is torch's rule
        assert torch.equal(adaptive_max_pool2d_bins(x, m), want), (size, m)  # a max is exact: bit-identical


def test_a_wrong_bin_rule_is_caught_on_these_sizes():
    """Bins ending at floor((i+1)*n/m) (no overlap) differ from torch's on the non-divisible sizes above."""
    x = torch.randn(1, 2, 21, 17, generator=torch.Generator().manual_seed(1))
    wrong = [((i * 21) // 8, ((i + 1) * 21) // 8) for i in range(8)]
    assert wrong != adaptive_bins(21, 8)
    rows = torch.stack([x[..., a:b, :].amax(dim=-2) for a, b in wrong], dim=-2)
    cols = torch.stack([rows[..., a:b].amax(dim=-1) for a, b in adaptive_bins(17, 8)], dim=-1)
    assert not torch.equal(cols, F.adaptive_max_pool2d(x, 8))


def _onnx_run(module: nn.Module, inputs: tuple[torch.Tensor, ...], path) -> np.ndarray:
    import onnxruntime as ort

    names = [f"x{i}" for i in range(len(inputs))]
    torch.onnx.export(module, inputs, str(path), input_names=names, output_names=["y"], opset_version=17,
                      dynamo=False, dynamic_axes={n: {0: "n"} for n in names})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})[0]


@pytest.mark.parametrize("size", [(21, 17), (16, 8), (5, 3)])
def test_spatial_pyramid_exports_to_onnx_with_identical_values(size, tmp_path):
    spp = SpatialPyramidPooling(LEVELS, "adaptive")
    x = torch.randn(3, 4, *size, generator=torch.Generator().manual_seed(2))
    got = _onnx_run(spp, (x,), tmp_path / "spp.onnx")
    want = spp(x).numpy()  # eager: the native adaptive_max_pool2d
    assert got.shape == want.shape == (3, 4 * sum(m * m for m in LEVELS))
    assert np.array_equal(got, want)
    # the batch axis stays dynamic
    x5 = torch.randn(5, 4, *size)
    assert np.array_equal(_onnx_run(spp, (x5,), tmp_path / "spp5.onnx"), spp(x5).numpy())


@pytest.mark.parametrize(("src", "dst"), [((8, 4), (2, 1)), ((32, 16), (8, 4)), ((7, 5), (3, 2)), ((4, 2), (8, 4))])
def test_fixed_resize_equals_antialiased_interpolate(src, dst, tmp_path):
    from reid.deploy.onnx_ops import FixedResize

    maps = torch.rand(2, 3, 57, *src, generator=torch.Generator().manual_seed(3)) * 2 - 1
    want = F.interpolate(maps.flatten(0, 1), size=dst, mode="bilinear", align_corners=False,
                         antialias=True).unflatten(0, (2, 3))
    resize = FixedResize(src, dst)
    assert float((resize(maps) - want).abs().max()) < 1e-6
    assert float(np.abs(_onnx_run(resize, (maps,), tmp_path / "r.onnx") - want.numpy()).max()) < 1e-6
    if dst[0] < src[0]:  # shrinking: plain bilinear (no antialias) is another resize, which the check tells apart
        plain = F.interpolate(maps.flatten(0, 1), size=dst, mode="bilinear", align_corners=False).unflatten(0, (2, 3))
        assert float((resize(maps) - plain).abs().max()) > 1e-2


def test_xlogy_symbolic_matches_torch(tmp_path):
    from reid.deploy.onnx_ops import register_symbolics

    class Entropy(nn.Module):
        def forward(self, p: torch.Tensor) -> torch.Tensor:
            return torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p)

    register_symbolics(17)
    p = torch.tensor([[0.0, 1.0, 0.5, 1e-8, 0.999, 0.25]])
    got = _onnx_run(Entropy(), (p,), tmp_path / "x.onnx")
    want = Entropy()(p).numpy()
    assert np.isfinite(got).all() and float(np.abs(got - want).max()) < 1e-6
