"""The pairwise evaluation path, with a tiny ASTPN-like scorer whose frame weights depend on the partner."""

import numpy as np
import pytest
import torch

from reid.errors import ReidError
from reid.evaluation.pairwise import PairwiseScorer, block_shape, pairwise_distance_matrix


class TinyAttentive(torch.nn.Module):
    """Attentive temporal pooling (ASTPN eqs. 6-9 in miniature): A = tanh(P U G^T), row / column max, softmax."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.u = torch.nn.Parameter(0.3 * torch.randn(dim, dim, generator=torch.Generator().manual_seed(0)))

    def pair_distance(self, q, g, q_mask, g_mask):
        a = torch.tanh(torch.einsum("atd,de,bse->abts", q, self.u, g))  # [Nq, Ng, Tq, Tg]
        qm = torch.ones(q.shape[:2], dtype=torch.bool) if q_mask is None else q_mask
        gm = torch.ones(g.shape[:2], dtype=torch.bool) if g_mask is None else g_mask
        neg = torch.finfo(a.dtype).min
        wq = a.masked_fill(~gm[None, :, None, :], neg).amax(-1).masked_fill(~qm[:, None, :], neg).softmax(-1)
        wg = a.masked_fill(~qm[:, None, :, None], neg).amax(-2).masked_fill(~gm[None, :, :], neg).softmax(-1)
        vq = torch.einsum("abt,atd->abd", wq, q)
        vg = torch.einsum("abs,bsd->abd", wg, g)
        return (vq - vg).norm(dim=-1)


def _states(n, t, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, d, generator=g)
    lengths = torch.randint(2, t + 1, (n,), generator=g)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return x, mask


def test_blocked_equals_unblocked():
    model = TinyAttentive(6)
    assert isinstance(model, PairwiseScorer)
    q, qm = _states(7, 5, 6, 1)
    g, gm = _states(11, 4, 6, 2)
    full = model.pair_distance(q, g, qm, gm)
    for budget in (1, 3 * 4000, 1 << 30):
        out = pairwise_distance_matrix(model, q, g, qm, gm, budget_bytes=budget, pair_bytes=4000)
        np.testing.assert_allclose(out.numpy(), full.detach().numpy(), atol=1e-6)


def test_masked_steps_do_not_matter():
    model = TinyAttentive(4)
    q, _ = _states(3, 6, 4, 3)
    g, _ = _states(5, 6, 4, 4)
    qm = torch.zeros(3, 6, dtype=torch.bool)
    qm[:, :3] = True
    noisy = q.clone()
    noisy[:, 3:] = 100.0
    a = pairwise_distance_matrix(model, q, g, qm, None, budget_bytes=1)
    b = pairwise_distance_matrix(model, noisy, g, qm, None, budget_bytes=1)
    c = pairwise_distance_matrix(model, q[:, :3], g)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    np.testing.assert_allclose(a.numpy(), c.numpy(), atol=1e-6)


def test_block_shape_respects_the_budget():
    for nq, ng, pb, budget in [(1980, 11310, 10_000, 256 << 20), (5, 7, 100, 10**9), (10, 10, 10**9, 1)]:
        rows, cols = block_shape(nq, ng, pb, budget)
        assert 1 <= rows <= nq and 1 <= cols <= ng
        assert rows * cols * pb <= max(budget, pb)


def test_rejects_a_model_without_pair_distance():
    with pytest.raises(ReidError, match="pair_distance"):
        pairwise_distance_matrix(torch.nn.Linear(2, 2), torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
