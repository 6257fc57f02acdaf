import torch

from reid.evaluation.pairwise import PairwiseScorer, pairwise_distance_matrix
from reid.models.astpn import ASTPN, AstpnParams, attentive_pair_distance, attentive_pool
from reid.registry import DataInfo

INFO = DataInfo(num_classes=3, height=32, width=24)


def _states(n: int, t: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.tanh(torch.randn(n, t, d, generator=torch.Generator().manual_seed(seed)))


def _batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"frames": torch.randn(n, 4, 3, 32, 24, generator=g),
            "flow": torch.rand(n, 4, 2, 32, 24, generator=g) * 2 - 1}


def test_pair_distance_matches_per_pair_loop_with_masks_and_blocks():
    q, g = _states(3, 5), _states(4, 6, seed=1)
    q_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 5])
    g_mask = torch.tensor([[True] * 6, [True] * 6, [True] * 2 + [False] * 4, [True] * 4 + [False] * 2])
    u = torch.randn(8, 8) * 0.3
    expected = torch.empty(3, 4)
    for i in range(3):
        for j in range(4):
            tq, tg = int(q_mask[i].sum()), int(g_mask[j].sum())
            v_p, v_g, _, _ = attentive_pool(q[i, :tq], g[j, :tg], u)
            expected[i, j] = (v_p - v_g).norm()
    for block in (1, 5, 1000):  # one pair per block, ragged blocks, everything at once
        got = attentive_pair_distance(q, g, u, q_mask, g_mask, block=block)
        assert torch.allclose(got, expected, atol=1e-5)


def test_model_is_a_pairwise_scorer_and_blocking_does_not_matter():
    model = ASTPN(AstpnParams(hidden=8), INFO).eval()
    assert isinstance(model, PairwiseScorer)
    q, g = _states(5, 4), _states(7, 4, seed=3)
    direct = model.pair_distance(q, g, None, None)
    blocked = pairwise_distance_matrix(model, q, g, budget_bytes=1, pair_bytes=1)  # 1 pair per block
    assert blocked.shape == (5, 7) and torch.allclose(direct, blocked, atol=1e-6)


def _self_paired_distances(model: ASTPN, qb: dict, gb: dict) -> torch.Tensor:
    with torch.no_grad():
        return torch.cdist(model(qb)["features"], model(gb)["features"])


def test_pairwise_equals_self_paired_when_attention_is_disabled():
    qb, gb = _batch(3, 10), _batch(5, 11)
    # (a) the mean-pooling variants (RNN-CNN, ASPN)
    model = ASTPN(AstpnParams(temporal_pooling="mean"), INFO).eval()
    with torch.no_grad():
        q, g = model.encode_sequences(qb), model.encode_sequences(gb)
    pairwise = pairwise_distance_matrix(model, q, g)
    assert torch.allclose(pairwise, _self_paired_distances(model, qb, gb), atol=1e-5)
    # (b) attentive pooling with U = 0: A = tanh(0) everywhere, so every frame weighs 1/T on both sides
    model = ASTPN(AstpnParams(), INFO).eval()
    with torch.no_grad():
        model.U.zero_()
        q, g = model.encode_sequences(qb), model.encode_sequences(gb)
    pairwise = pairwise_distance_matrix(model, q, g, budget_bytes=4096)
    assert torch.allclose(pairwise, _self_paired_distances(model, qb, gb), atol=1e-5)


def test_pairwise_attention_differs_from_self_pairing():
    model = ASTPN(AstpnParams(), INFO).eval()
    qb, gb = _batch(3, 12), _batch(5, 13)
    with torch.no_grad():
        model.U.copy_(torch.randn(128, 128) * 0.05)
        q, g = model.encode_sequences(qb), model.encode_sequences(gb)
    pairwise = pairwise_distance_matrix(model, q, g)
    assert not torch.allclose(pairwise, _self_paired_distances(model, qb, gb), atol=1e-4)


def test_normalize_option_uses_unit_vectors():
    q, g, u = _states(2, 3), _states(3, 3, seed=4), torch.randn(8, 8) * 0.3
    d = attentive_pair_distance(q, g, u, normalize=True)
    assert torch.all(d <= 2.0 + 1e-6)
    v_p, v_g, _, _ = attentive_pool(q[1], g[2], u)
    assert torch.allclose(d[1, 2], (v_p / v_p.norm() - v_g / v_g.norm()).norm(), atol=1e-6)
