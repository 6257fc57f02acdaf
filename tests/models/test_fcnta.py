import pytest
import torch

from reid.config import ConfigError, build_config
from reid.models.fcnta import FCNTA, FcntaParams, FCNTemporalAttention, _linear_upsampling_kernel
from reid.registry import DataInfo, get_method
from tests.models.shared import SMALL_RCN_INPUT, check_siamese_ablation_spec

INFO = DataInfo(num_classes=4, height=32, width=24)  # small frames keep the tests fast on CPU


def _batch(b: int = 4, t: int = 6, pair: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    batch = {"frames": torch.randn(b, t, 3, 32, 24, generator=g),
             "flow": torch.rand(b, t, 2, 32, 24, generator=g) * 2 - 1,
             "pid": torch.tensor([0, 1, 0, 2][:b])}
    if pair:
        batch["pair_same"] = torch.tensor([1.0, 0.0])
    return batch


@pytest.mark.parametrize("n", [16, 13, 6, 1])
def test_fcn_attention_returns_one_score_per_frame(n):
    fcn = FCNTemporalAttention(128, [128, 128])
    assert fcn.stride == 4
    assert fcn(torch.randn(3, n, 128)).shape == (3, n)


def test_fcn_upsampling_starts_as_linear_interpolation():
    kernel = _linear_upsampling_kernel(4)
    assert torch.allclose(kernel, torch.tensor([0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125]))
    fcn = FCNTemporalAttention(8, [8, 8])
    up = fcn.upscore(torch.tensor([[[1.0, 1.0, 1.0, 1.0]]]))
    assert up.shape[-1] == 16 and torch.allclose(up[0, 0, 2:14], torch.ones(12))  # constant in, constant out


def test_attention_pooling_matches_eqs_1_and_2():
    model = FCNTA(FcntaParams(), INFO).eval()
    batch = _batch(pair=False)
    with torch.no_grad():
        out = model(batch)
        x = torch.cat([batch["frames"], batch["flow"]], dim=2)
        z = model.cnn(x)
        alpha = model.attention(z)
    for b in range(z.shape[0]):
        lam = [1.0 / (1.0 + torch.exp(-alpha[b, i])) for i in range(z.shape[1])]          # eq. 1b
        gamma = sum(lam[i] * z[b, i] for i in range(z.shape[1]))                          # eq. 2
        f = 0.5 * (gamma + sum(z[b, i] for i in range(z.shape[1])) / z.shape[1])
        assert torch.allclose(out["global"][b], f, atol=1e-5)
        assert torch.allclose(out["temporal_weights"][b], torch.stack(lam), atol=1e-6)
        assert torch.allclose(out["features"][b], f / f.norm(), atol=1e-5)
    assert torch.allclose(out["logits"], model.classifier(out["global"]), atol=1e-6)


def test_softmax_and_mean_options():
    soft = FCNTA(FcntaParams(attention="softmax"), INFO).eval()
    w = soft(_batch(pair=False))["temporal_weights"]
    assert torch.allclose(w.sum(1), torch.ones(4), atol=1e-6)
    mean = FCNTA(FcntaParams(pooling="mean"), INFO).eval()
    assert mean.attention is None
    batch = _batch(pair=False)
    out = mean(batch)
    z = mean.cnn(torch.cat([batch["frames"], batch["flow"]], dim=2))
    assert torch.allclose(out["global"], z.mean(1), atol=1e-6)
    assert torch.allclose(out["temporal_weights"], torch.full((4, 6), 1 / 6))


def test_probe_options_renormalise_and_sum_pooling():
    """renormalise: gamma = sum_i lambda_i z_i / sum_i lambda_i; sum pooling: lambda_i = 1, gamma = sum_i z_i;
    both then F = (gamma + mean z) / 2 (naive loops over the frames)."""
    batch = _batch(pair=False)
    x = torch.cat([batch["frames"], batch["flow"]], dim=2)
    renorm = FCNTA(FcntaParams(renormalise=True), INFO).eval()
    summed = FCNTA(FcntaParams(pooling="sum"), INFO).eval()
    assert summed.attention is None
    with torch.no_grad():
        out_r, out_s = renorm(batch), summed(batch)
        z_r, z_s = renorm.cnn(x), summed.cnn(x)
        alpha = renorm.attention(z_r)
    t = z_r.shape[1]
    for b in range(z_r.shape[0]):
        lam = [torch.sigmoid(alpha[b, i]) for i in range(t)]
        gamma = sum(lam[i] * z_r[b, i] for i in range(t)) / sum(lam)
        assert torch.allclose(out_r["global"][b], 0.5 * (gamma + sum(z_r[b, i] for i in range(t)) / t), atol=1e-5)
        total = sum(z_s[b, i] for i in range(t))
        assert torch.allclose(out_s["global"][b], 0.5 * (total + total / t), atol=1e-5)
    assert torch.allclose(out_r["temporal_weights"], torch.sigmoid(alpha), atol=1e-6)
    assert torch.equal(out_s["temporal_weights"], torch.ones(4, 6))


def test_spec_declares_the_input_pipeline():
    spec = get_method("fcnta")
    assert spec.batching == "pairs" and spec.input_norm == "yuv" and spec.inputs == frozenset({"frames", "flow"})
    assert set(spec.variants) == {"full", "mean-pooling", "attention-only", "softmax", "no-flow",
                                  "sigmoid-renormalised", "sum-pooling"}


@pytest.mark.parametrize("variant", ["full", "mean-pooling", "attention-only", "softmax", "no-flow",
                                     "sigmoid-renormalised", "sum-pooling"])
@torch.no_grad()
def test_every_variant_outputs_and_inputs(variant):
    """Backward and finite losses of every variant are tests/models/test_contract.py's; these are fcnta's."""
    spec = get_method("fcnta")
    cfg = build_config("fcnta", ["fcnta-synthetic"], [f"variant={variant}"])
    model = spec.build_model(cfg.model, INFO)
    batch = _batch()
    if variant == "no-flow":
        del batch["flow"]  # the colour-only model does not need it
    out = model(batch)
    assert out["features"].shape == (4, 128) and out["temporal_weights"].shape == (4, 6)
    assert model.cnn.conv.net[0].in_channels == (3 if variant == "no-flow" else 5)


def test_even_fcn_window_is_a_config_error():
    with pytest.raises(ConfigError, match="fcn_window"):
        build_config("fcnta", ["fcnta-synthetic"], ["model.fcn_window=4"])


@pytest.mark.parametrize("table", ['fcnta-components', 'fcnta-components-prid2011', 'fcnta-table4',
                                   'fcnta-scale-probe'])
def test_ablation_specs_name_real_variants(table):
    check_siamese_ablation_spec("fcnta", table)


# "learns" margin: the untrained RCN already scores mAP ~60 on the 8 test identities of the tiny set (11 queries, so
# one query moves the number by 9 points), so a test-split comparison cannot tell a learning model from a broken
# one. The 12 TRAINING identities are what a short run must fit: ranked against each other (one query tracklet per
# identity vs its tracklets from the other cameras), a model that learns must beat the untrained one by a wide
# margin, which a model that does not learn (e.g. frozen, lr 0) cannot pass.
LEARN_MARGIN = 20.0   # mAP points on the training identities


def training_identity_map(cfg, checkpoint) -> float:
    """mAP of `checkpoint` (None = untrained) ranking the training identities of `cfg`'s manifest: per identity its
    first tracklet is the query, the others (other cameras) the gallery; protocol `generic`."""
    from dataclasses import replace

    from reid.data.records import read_manifest, write_manifest
    from reid.evaluation.run.evaluate import evaluate
    from reid.training import api

    src = api.manifest_path_for(cfg)
    m = read_manifest(src)
    seen: set[int] = set()
    recs = []
    for r in m.records:
        if r.role == "train":
            recs.append(r.with_role("gallery" if r.pid in seen else "query"))
            seen.add(r.pid)
    path = write_manifest(replace(m, records=recs), src.parent / "train-as-test.parquet")
    ev = cfg.eval.model_copy(update={"protocol": "generic"})
    return evaluate(cfg.model_copy(update={"eval": ev}), checkpoint, manifest=path).metrics["mAP"]


def learned(trained_map: float, untrained_map: float) -> bool:
    return trained_map >= untrained_map + LEARN_MARGIN


def short_run_learns(method: str, config: str, tmp_path, *overrides: str) -> tuple[list, float, float]:
    """Train in this process on the tiny synthetic set; (history, training-identity mAP untrained, trained)."""
    from reid.training import api

    cfg = build_config(method, [config], [f"data.root={tmp_path / 'synth'}", "data.synth_preset=tiny",
                                          "ray.num_workers=0", f"ray.storage_path={tmp_path / 'runs'}", *overrides])
    before = training_identity_map(cfg, None)
    result = api.train(cfg)
    return result.history, before, training_identity_map(cfg, result.run_dir)


@pytest.mark.slow
def test_short_cpu_training_run_learns(tmp_path):
    history, before, after = short_run_learns("fcnta", "fcnta-synthetic", tmp_path, "train.epochs=8",
                                              "train.eval_every=8", *SMALL_RCN_INPUT)
    assert history[-1]["loss"] < history[0]["loss"]
    print(f"training-identity mAP: untrained {before:.1f} -> trained {after:.1f}")
    assert not learned(before, before)          # the untrained model itself (a model that does not learn) fails
    assert learned(after, before), (before, after)

def naive_fcn_scores(fcn: FCNTemporalAttention, z: torch.Tensor) -> torch.Tensor:
    """alpha of eq. 1a for one sequence z [N, D], written out with scalar time loops from the FCN-32s design of the
    module docstring (fig. 3): 'same' 1-D convolutions, ReLU, max-pool 2 per encoder stage; fc6 / fc7 / score;
    transposed-convolution up-sampling by s; crop to N. Eval mode (dropout off)."""
    n = z.shape[0]
    s = fcn.stride
    x = z.T                                                        # [D, N]
    pad = (-n) % s
    if pad:
        x = torch.cat([x, x[:, -1:].repeat(1, pad)], dim=1)        # repeat the last frame up to a multiple of s

    def conv(x: torch.Tensor, layer: torch.nn.Conv1d) -> torch.Tensor:
        k = layer.kernel_size[0]
        half = k // 2
        length = x.shape[1]
        out = torch.zeros(layer.out_channels, length)
        for t in range(length):
            for j in range(k):
                src = t + j - half
                if 0 <= src < length:                              # zero 'same' padding
                    out[:, t] += layer.weight[:, :, j] @ x[:, src]
            out[:, t] += layer.bias
        return out

    convs = [m for m in fcn.encoder if isinstance(m, torch.nn.Conv1d)]
    for layer in convs:
        y = torch.relu(conv(x, layer))
        x = torch.stack([torch.maximum(y[:, 2 * i], y[:, 2 * i + 1]) for i in range(y.shape[1] // 2)], dim=1)
    head = [m for m in fcn.head if isinstance(m, torch.nn.Conv1d)]
    x = torch.relu(conv(x, head[0]))                               # fc6
    x = torch.relu(conv(x, head[1]))                               # fc7
    score = conv(x, head[2])[0]                                    # one logit per down-sampled step
    kernel = fcn.upscore.weight[0, 0]                              # transposed conv: out[i*s + j - s/2] += in[i] k[j]
    up = torch.zeros(score.shape[0] * s)
    for i in range(score.shape[0]):
        for j in range(kernel.shape[0]):
            o = i * s + j - s // 2
            if 0 <= o < up.shape[0]:
                up[o] += score[i] * kernel[j]
    return up[:n]


@pytest.mark.parametrize("n", [16, 13])
def test_fcn_matches_naive_fcn32s(n):
    torch.manual_seed(0)
    fcn = FCNTemporalAttention(8, [6, 6], hidden=5).eval()
    with torch.no_grad():
        fcn.upscore.weight.add_(torch.randn_like(fcn.upscore.weight) * 0.3)   # a learned, non-interpolating kernel
        z = torch.randn(2, n, 8)
        got = fcn(z)
        for b in range(2):
            assert torch.allclose(got[b], naive_fcn_scores(fcn, z[b]), atol=1e-5)


def test_fcn_check_rejects_a_broken_fcn():
    """Broken FCNs (the wrong end of the up-sampled scores kept; zero instead of repeated padding) fail the check."""
    torch.manual_seed(0)
    fcn = FCNTemporalAttention(8, [6, 6], hidden=5).eval()

    class WrongCrop(FCNTemporalAttention):
        def forward(self, z):
            n = z.shape[1]
            x = torch.nn.functional.pad(z.transpose(1, 2), (0, (-n) % self.stride), mode="replicate")
            return self.upscore(self.head(self.encoder(x)))[:, 0, -n:]

    class ZeroPad(FCNTemporalAttention):
        def forward(self, z):
            n = z.shape[1]
            x = torch.nn.functional.pad(z.transpose(1, 2), (0, (-n) % self.stride))
            return self.upscore(self.head(self.encoder(x)))[:, 0, :n]

    z = torch.randn(2, 13, 8)
    for cls in (WrongCrop, ZeroPad):
        broken = cls(8, [6, 6], hidden=5).eval()
        broken.load_state_dict(fcn.state_dict())
        with torch.no_grad():
            assert torch.allclose(fcn(z)[0], naive_fcn_scores(fcn, z[0]), atol=1e-5)
            assert not torch.allclose(broken(z)[0], naive_fcn_scores(fcn, z[0]), atol=1e-5)
