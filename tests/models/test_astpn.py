import pytest
import torch

from reid.config import build_config
from reid.models.astpn import ASTPN, AstpnParams, RecurrentLayer, attentive_pool
from reid.registry import DataInfo, get_method
from tests.models.shared import SMALL_RCN_INPUT, check_siamese_ablation_spec
from tests.models.test_fcnta import learned, short_run_learns

INFO = DataInfo(num_classes=4, height=32, width=24)  # small frames keep the tests fast on CPU
VARIANTS = ["RNN-CNN", "ATPN", "ASPN", "ASTPN", "no-flow"]


def _batch(b: int = 4, t: int = 5, pair: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    batch = {"frames": torch.randn(b, t, 3, 32, 24, generator=g),
             "flow": torch.rand(b, t, 2, 32, 24, generator=g) * 2 - 1,
             "pid": torch.tensor([0, 1, 0, 2][:b])}
    if pair:
        batch["pair_same"] = torch.tensor([1.0, 0.0])
    return batch


def _attention_loop(p: torch.Tensor, g: torch.Tensor, u: torch.Tensor):
    """Eqs. 3-5 for one pair, written element by element. p [T, N], g [S, N], u [N, N]."""
    t, s = p.shape[0], g.shape[0]
    a = [[torch.tanh(sum(p[i, k] * u[k, m] * g[j, m] for k in range(u.shape[0]) for m in range(u.shape[1])))
          for j in range(s)] for i in range(t)]                                               # eq. 3
    t_p = [max(a[i][j] for j in range(s)) for i in range(t)]                                  # row-wise max
    t_g = [max(a[i][j] for i in range(t)) for j in range(s)]                                  # column-wise max
    a_p = [torch.exp(x) / sum(torch.exp(y) for y in t_p) for x in t_p]                        # eq. 4
    a_g = [torch.exp(x) / sum(torch.exp(y) for y in t_g) for x in t_g]
    v_p = sum(a_p[i] * p[i] for i in range(t))                                                # eq. 5
    v_g = sum(a_g[j] * g[j] for j in range(s))
    return v_p, v_g, torch.stack(a_p), torch.stack(a_g)


def test_recurrent_layer_matches_eq2_loop():
    rnn = RecurrentLayer(7, 4)
    r = torch.randn(2, 5, 7)
    out = rnn(r)
    u, bias, w = rnn.U.weight, rnn.U.bias, rnn.W.weight
    for b in range(2):
        s = torch.zeros(4)                                                                    # s_0 = 0
        for t in range(5):
            o = u @ r[b, t] + bias + w @ s                                                    # o_t = U r_t + W s_{t-1}
            s = torch.tanh(o)
            assert torch.allclose(out[b, t], s, atol=1e-6)


def test_attentive_pooling_matches_eqs_3_to_5_loop():
    p, g, u = torch.randn(4, 3), torch.randn(6, 3), torch.randn(3, 3) * 0.5
    v_p, v_g, a_p, a_g = attentive_pool(p, g, u)
    e_vp, e_vg, e_ap, e_ag = _attention_loop(p, g, u)
    for got, exp in ((v_p, e_vp), (v_g, e_vg), (a_p, e_ap), (a_g, e_ag)):
        assert torch.allclose(got, exp, atol=1e-5)


def test_attention_depends_on_the_partner_sequence():
    # RNN outputs lie in (-1, 1); a large A would saturate tanh, every max would be 1 and the weights uniform
    p, g1, g2 = torch.tanh(torch.randn(5, 8)), torch.tanh(torch.randn(5, 8)), torch.tanh(torch.randn(5, 8))
    u = torch.randn(8, 8) * 0.3
    v1, _, a1, _ = attentive_pool(p, g1, u)
    v2, _, a2, _ = attentive_pool(p, g2, u)
    assert not torch.allclose(a1, a2, atol=1e-3) and not torch.allclose(v1, v2, atol=1e-3)


def test_masked_frames_are_ignored():
    p, g, u = torch.randn(2, 6, 4), torch.randn(2, 5, 4), torch.randn(4, 4)
    p_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    g_mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    v_p, v_g, a_p, a_g = attentive_pool(p, g, u, p_mask, g_mask)
    for b in range(2):
        tp, tg = int(p_mask[b].sum()), int(g_mask[b].sum())
        e_vp, e_vg, e_ap, e_ag = _attention_loop(p[b, :tp], g[b, :tg], u)
        assert torch.allclose(v_p[b], e_vp, atol=1e-5) and torch.allclose(v_g[b], e_vg, atol=1e-5)
        assert torch.allclose(a_p[b, :tp], e_ap, atol=1e-6) and torch.all(a_p[b, tp:] == 0)
        assert torch.allclose(a_g[b, :tg], e_ag, atol=1e-6) and torch.all(a_g[b, tg:] == 0)


def test_pairs_batch_pools_partners_and_eval_pairs_with_itself():
    model = ASTPN(AstpnParams(), INFO).eval()
    batch = _batch()
    with torch.no_grad():
        states = model.encode_sequences(batch)
        out = model(batch)
        v_a, v_b, _, _ = attentive_pool(states[:2], states[2:], model.U)
        assert torch.allclose(out["features"], torch.cat([v_a, v_b]), atol=1e-6)
        single = model({k: v for k, v in batch.items() if k != "pair_same"})
        v_self, _, w_self, _ = attentive_pool(states, states, model.U)
    assert torch.allclose(single["features"], v_self, atol=1e-6)
    assert torch.allclose(single["temporal_weights"], w_self, atol=1e-6)
    assert not torch.allclose(out["features"], single["features"], atol=1e-4)  # the partner matters


def test_spatial_pyramid_gives_2720_inputs_to_the_rnn_at_paper_size():
    info = DataInfo(num_classes=3, height=56, width=40)
    assert ASTPN(AstpnParams(), info).rnn.U.in_features == 32 * (64 + 16 + 4 + 1)
    assert ASTPN(AstpnParams(spatial_pooling="maxpool"), info).rnn.U.in_features == 32 * 10 * 8


def test_spec_declares_the_input_pipeline():
    spec = get_method("astpn")
    assert spec.batching == "pairs" and spec.input_norm == "yuv" and spec.inputs == frozenset({"frames", "flow"})
    assert set(spec.variants) == set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_every_variant_builds_its_pooling(variant):
    """Backward and finite losses of every variant are tests/models/test_contract.py's; these are the layers."""
    spec = get_method("astpn")
    cfg = build_config("astpn", ["astpn-synthetic"], [f"variant={variant}"])
    model = spec.build_model(cfg.model, INFO)
    batch = _batch()
    if variant == "no-flow":
        del batch["flow"]
    out = model(batch)
    assert out["features"].shape == (4, 128) and out["temporal_weights"].shape == (4, 5)
    assert (model.U is not None) == (cfg.model["temporal_pooling"] == "attentive")
    assert (model.cnn.spp is not None) == (cfg.model["spatial_pooling"] == "spp")


@pytest.mark.parametrize("table", ['astpn-fig5', 'astpn-fig5-prid2011', 'astpn-fig5-mars', 'astpn-table2', 'astpn-table2-prid2011', 'astpn-table3', 'astpn-table4'])
def test_ablation_specs_name_real_variants(table):
    check_siamese_ablation_spec("astpn", table)


@pytest.mark.slow
def test_short_cpu_training_run_learns(tmp_path):
    """A margin on the training identities (see tests/models/test_fcnta.py: the untrained model already scores ~60
    mAP on the tiny test split, so `trained > untrained` there cannot catch a broken model)."""
    history, before, after = short_run_learns("astpn", "astpn-synthetic", tmp_path, "train.epochs=4",
                                              "train.eval_every=4", *SMALL_RCN_INPUT)
    assert history[-1]["loss"] < history[0]["loss"]
    print(f"training-identity mAP: untrained {before:.1f} -> trained {after:.1f}")
    assert not learned(before, before)
    assert learned(after, before), (before, after)
