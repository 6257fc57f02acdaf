"""ASRE module (ASA-Net eqs. 8-10) against a per-pixel loop written from the paper."""

import math

import torch

from reid.models.layers.asre import ASRE


def _conv(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """1x1 convolution of one pixel vector x [C_in] -> [C_out]."""
    return conv.weight[:, :, 0, 0] @ x + conv.bias


def _asre_loop(m: ASRE, x_i: torch.Tensor, x_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample: x_i [C_I, H, W], x_a [C_A, Ha, Wa]; BN in eval mode (per-channel affine)."""
    _, h, w = x_i.shape
    ids = [(r, c) for r in range(h) for c in range(w)]
    attrs = [(r, c) for r in range(x_a.shape[1]) for c in range(x_a.shape[2])]
    bn = m.bn
    out, mask = torch.zeros_like(x_i), torch.zeros(h, w)
    for r, c in ids:
        q = torch.relu(_conv(m.f_q, x_i[:, r, c]))
        scores = torch.stack([q @ torch.relu(_conv(m.f_k, x_a[:, ar, ac])) / math.sqrt(m.d_k) for ar, ac in attrs])
        att = torch.exp(scores) / torch.exp(scores).sum()                                  # eq. 8
        x_v = sum(att[j] * _conv(m.f_v, x_a[:, ar, ac]) for j, (ar, ac) in enumerate(attrs))  # eq. 9
        x_bn = (x_v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        mask[r, c] = _conv(m.f_mask, x_bn)[0]
        out[:, r, c] = x_i[:, r, c] + m.alpha * mask[r, c] * x_i[:, r, c]                # eq. 10
    return out, mask


def test_asre_matches_loop_and_shapes():
    torch.manual_seed(0)
    m = ASRE(id_channels=6, attr_channels=10, key_channels=4).eval()
    m.bn.running_mean.uniform_(-0.5, 0.5)
    m.bn.running_var.uniform_(0.5, 2.0)
    m.bn.weight.data.uniform_(0.5, 1.5)
    m.bn.bias.data.uniform_(-0.2, 0.2)
    with torch.no_grad():
        m.alpha.fill_(0.7)
    x_i, x_a = torch.randn(2, 6, 4, 3), torch.randn(2, 10, 3, 2)    # attribute map at another resolution
    out, mask = m(x_i, x_a)
    assert out.shape == (2, 6, 4, 3) and mask.shape == (2, 4, 3)
    att = m.attention(x_i, x_a)
    assert att.shape == (2, 12, 6) and torch.allclose(att.sum(-1), torch.ones(2, 12))
    for n in range(2):
        ref_out, ref_mask = _asre_loop(m, x_i[n], x_a[n])
        assert torch.allclose(mask[n], ref_mask, atol=1e-5)
        assert torch.allclose(out[n], ref_out, atol=1e-5)


def test_alpha_zero_is_identity_and_alpha_starts_at_one():
    m = ASRE(8, 16)
    assert isinstance(m.alpha, torch.nn.Parameter) and float(m.alpha.detach()) == 1.0
    with torch.no_grad():
        m.alpha.zero_()
    x_i, x_a = torch.randn(3, 8, 4, 2), torch.randn(3, 16, 4, 2)
    out, _ = m(x_i, x_a)
    assert torch.equal(out, x_i)


def test_alpha_and_all_convs_get_gradients():
    m = ASRE(8, 16, mask_activation="sigmoid")
    out, mask = m(torch.randn(3, 8, 4, 2), torch.randn(3, 16, 4, 2))
    assert float(mask.detach().min()) > 0 and float(mask.detach().max()) < 1
    out.square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert float(m.alpha.grad.abs()) > 0
