import math

import pytest
import torch
import torch.nn.functional as F

from reid.errors import ReidError
from reid.models.layers.rcn import RCNConv, RCNFrameCNN, rcn_input
from reid.models.layers.spp import SpatialPyramidPooling, paper_bins


def _spp_loop(x: torch.Tensor, levels, bounds) -> torch.Tensor:
    """Eq. 1 written out: for each level, each bin, each channel, the max over the bin's cells."""
    n, c, h, w = x.shape
    out = []
    for b in range(n):
        parts = []
        for m in levels:
            rows, cols = bounds(h, m), bounds(w, m)
            vals = torch.empty(c, len(rows), len(cols))
            for ch in range(c):
                for i, (r0, r1) in enumerate(rows):
                    for j, (c0, c1) in enumerate(cols):
                        vals[ch, i, j] = x[b, ch, r0:r1, c0:c1].max()
            parts.append(vals.flatten())
        out.append(torch.cat(parts))
    return torch.stack(out)


def _adaptive_bounds(size: int, m: int):
    return [(math.floor(i * size / m), math.ceil((i + 1) * size / m)) for i in range(m)]


def _paper_bounds(size: int, m: int):
    win, stride = math.ceil(size / m), size // m
    return [(s, s + win) for s in range(0, size - win + 1, stride)]


def test_spp_output_size_for_the_rcn_conv3_maps():
    conv = RCNConv(5, (16, 32, 32), pool_last=False)
    assert conv.output_shape(56, 40) == (32, 21, 17)
    spp = SpatialPyramidPooling((8, 4, 2, 1))
    out = spp(conv(torch.randn(2, 5, 56, 40)))
    assert out.shape == (2, 32 * (64 + 16 + 4 + 1)) == (2, spp.output_dim(32, 21, 17))


def test_spp_adaptive_matches_loop():
    x = torch.randn(2, 3, 21, 17)
    levels = (8, 4, 2, 1)
    expected = _spp_loop(x, levels, _adaptive_bounds)
    assert torch.equal(SpatialPyramidPooling(levels, "adaptive")(x), expected)


def test_spp_paper_rule_matches_loop_and_reports_its_size():
    x = torch.randn(2, 3, 21, 17)
    levels = (8, 4, 2, 1)
    spp = SpatialPyramidPooling(levels, "paper")
    out = spp(x)
    assert torch.equal(out, _spp_loop(x, levels, _paper_bounds))
    # window ceil(21/8)=3, stride floor(21/8)=2 -> 10 rows at the 8x8 level (eq. 1 taken literally)
    assert paper_bins(21, 8) == 10 and paper_bins(17, 8) == 8
    assert out.shape[1] == spp.output_dim(3, 21, 17) == 3 * (80 + 16 + 4 + 1)


def test_spp_rules_agree_when_levels_divide_the_map():
    x = torch.randn(1, 4, 16, 8)
    assert torch.equal(SpatialPyramidPooling((8, 4, 2, 1), "paper")(x), SpatialPyramidPooling((8, 4, 2, 1))(x))


def test_spp_paper_rule_rejects_maps_smaller_than_a_level():
    with pytest.raises(ValueError, match="at least 8"):
        SpatialPyramidPooling((8,), "paper")(torch.randn(1, 1, 5, 9))


def test_rcn_conv_matches_the_layer_recipe():
    conv = RCNConv(5, (16, 32, 32), pool_last=True)
    x = torch.randn(2, 5, 56, 40)
    y = x
    convs = [m for m in conv.net if isinstance(m, torch.nn.Conv2d)]
    for layer in convs:  # 5x5 conv, stride 1, zero-pad 4, tanh, 2x2 max-pool
        assert layer.kernel_size == (5, 5) and layer.padding == (4, 4) and layer.stride == (1, 1)
        y = F.max_pool2d(torch.tanh(F.conv2d(y, layer.weight, layer.bias, padding=4)), 2)
    assert [c.out_channels for c in convs] == [16, 32, 32]
    assert torch.allclose(conv(x), y, atol=1e-6)
    assert y.shape[1:] == (32, 10, 8)  # the 32 x 10 x 8 that RCN's FC consumes


def test_frame_cnn_shapes_and_dropout_is_train_only():
    cnn = RCNFrameCNN(5, 56, 40, embed_dim=128, dropout=0.6)
    x = torch.randn(2, 3, 5, 56, 40)
    assert cnn.flat_dim == 32 * 10 * 8
    assert cnn(x).shape == (2, 3, 128)
    cnn.eval()
    assert torch.equal(cnn(x), cnn(x))
    spp = RCNFrameCNN(5, 56, 40, spatial="spp", embed_dim=None, dropout=0.0)
    assert spp(x).shape == (2, 3, 2720)


def test_rcn_input_stacks_flow_and_checks_it():
    frames, flow = torch.randn(2, 4, 3, 8, 6), torch.rand(2, 4, 2, 8, 6)
    x = rcn_input({"frames": frames, "flow": flow}, use_flow=True)
    assert x.shape == (2, 4, 5, 8, 6) and torch.equal(x[:, :, 3:], flow)
    assert rcn_input({"frames": frames, "flow": flow}, use_flow=False) is frames
    assert rcn_input({"frames": frames}, use_flow=False) is frames
    with pytest.raises(ReidError, match="use_flow"):
        rcn_input({"frames": frames}, use_flow=True)
    with pytest.raises(ReidError, match=r"\[B, T, 2, H, W\]"):
        rcn_input({"frames": frames, "flow": flow[:, :, :1]}, use_flow=True)
