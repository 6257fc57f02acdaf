"""posetap (Jones & Rambhatla, BMVC 2019): eqs. 2-7 and 10 against naive loops, every variant end to end."""

import numpy as np
import pytest
import torch

from reid.config import build_config
from reid.data.pose_maps import JOINT_NAMES, LIMBS, render_pose_maps
from reid.errors import ReidError
from reid.losses.metric import pairwise_distance
from reid.models.layers.part_maps import CompositePartMaps, part_pooled_features, spatial_softmax
from reid.models.layers.tap import TemporalAttentionNet, weighted_temporal_sum
from reid.registry import DataInfo, get_method
from reid.training.optim import param_groups
from tests.models.shared import short_run_against_untrained

# The sets of section 3.2, spelled out from the paper's text (joint names, then limbs as name pairs).
PAPER_JOINTS = {
    0: {"right_eye", "left_eye", "right_ear", "left_ear", "nose", "neck"},
    1: {"right_elbow", "left_elbow", "right_shoulder", "left_shoulder", "right_wrist", "left_wrist"},
    2: {"right_hip", "left_hip", "right_knee", "left_knee", "right_ankle", "left_ankle"},
}
PAPER_LIMBS = {
    0: [("right_eye", "right_ear"), ("left_eye", "left_ear"), ("left_eye", "nose"), ("right_eye", "nose"),
        ("nose", "neck")],
    1: [("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("neck", "right_hip"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("neck", "left_hip")],
    2: [("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "left_knee"),
        ("left_knee", "left_ankle")],
}


def naive_sets() -> dict[int, list[int]]:
    sets = {}
    for r in range(3):
        chans = [JOINT_NAMES.index(j) for j in PAPER_JOINTS[r]]
        for a, b in PAPER_LIMBS[r]:
            pair = {JOINT_NAMES.index(a), JOINT_NAMES.index(b)}
            limb = next(i for i, lb in enumerate(LIMBS) if set(lb) == pair)
            chans += [19 + 2 * limb, 20 + 2 * limb]
        sets[r] = chans
    return sets


def test_single_joint_heat_map_lands_in_its_part():
    sets = naive_sets()
    parts = CompositePartMaps(paf="signed", temperature=1.0)
    for j, name in enumerate(JOINT_NAMES):
        maps = torch.zeros(1, 57, 4, 3)
        maps[0, j, 2, 1] = 1.0
        comp = parts.composite(maps)[0]
        owner = next(r for r in range(3) if name in PAPER_JOINTS[r])
        for r in range(3):
            expected = 1.0 / len(sets[r]) if r == owner else 0.0
            assert comp[r, 2, 1].item() == pytest.approx(expected), (name, r)
            assert comp[r].sum().item() == pytest.approx(expected)


def test_rendered_knee_lands_in_lower_part():
    kps = np.zeros((1, 18, 3), np.float32)
    kps[0, JOINT_NAMES.index("left_knee")] = (30.0, 90.0, 1.0)
    maps = torch.from_numpy(render_pose_maps(kps, (128, 64), (16, 8)))
    comp = CompositePartMaps().composite(maps)[0]
    assert comp[2].max() > 0 and comp[0].abs().max() == 0 and comp[1].abs().max() == 0
    y, x = divmod(int(comp[2].argmax()), 8)
    assert (y, x) == (11, 3)  # (90 + 0.5) / 8 - 0.5 = 10.8, (30 + 0.5) / 8 - 0.5 = 3.3


def test_composite_matches_eq2_loop_signed_and_abs():
    sets = naive_sets()
    maps = torch.randn(2, 57, 3, 2)
    for paf in ("signed", "abs"):
        comp = CompositePartMaps(paf=paf).composite(maps)
        for n in range(2):
            for r in range(3):
                for y in range(3):
                    for x in range(2):
                        vals = [maps[n, k, y, x].item() for k in sets[r]]
                        if paf == "abs":
                            vals = [abs(v) if k >= 19 else v for v, k in zip(vals, sets[r], strict=True)]
                        assert comp[n, r, y, x].item() == pytest.approx(sum(vals) / len(vals), abs=1e-6)


def test_unassigned_channels_are_in_no_part():
    sets = naive_sets()
    used = set().union(*sets.values())
    unused = sorted(set(range(57)) - used)
    names = {(JOINT_NAMES[a], JOINT_NAMES[b]) for a, b in LIMBS}
    shoulder_limbs = [i for i, (a, b) in enumerate(LIMBS)
                      if {JOINT_NAMES[a], JOINT_NAMES[b]} in ({"neck", "right_shoulder"}, {"neck", "left_shoulder"},
                                                              {"right_shoulder", "right_ear"},
                                                              {"left_shoulder", "left_ear"})]
    assert len(names) == 19 and len(shoulder_limbs) == 4
    assert unused == sorted([18] + [19 + 2 * i + c for i in shoulder_limbs for c in (0, 1)])
    maps = torch.zeros(1, 57, 2, 2)
    maps[0, unused] = 5.0
    assert CompositePartMaps().composite(maps).abs().max() == 0


def test_spatial_softmax_matches_eq3_and_sums_to_one():
    x = torch.randn(2, 3, 4, 3)
    out = spatial_softmax(x)
    for n in range(2):
        for r in range(3):
            denom = sum(np.exp(x[n, r, i, j].item()) for i in range(4) for j in range(3))
            for k in range(4):
                for m in range(3):
                    assert out[n, r, k, m].item() == pytest.approx(np.exp(x[n, r, k, m].item()) / denom, rel=1e-5)
    assert torch.allclose(out.sum(dim=(2, 3)), torch.ones(2, 3))


def test_temperature_sharpens_and_masks_sum_to_one_after_resize():
    maps = torch.rand(2, 57, 16, 8)
    flat = CompositePartMaps(temperature=1.0)(maps, (8, 4))
    sharp = CompositePartMaps(temperature=0.05)(maps, (8, 4))
    assert flat.shape == (2, 3, 8, 4)
    assert torch.allclose(sharp.sum(dim=(2, 3)), torch.ones(2, 3), atol=1e-5)
    assert (sharp.amax(dim=(2, 3)) > flat.amax(dim=(2, 3))).all()


def test_mask_on_one_location_selects_its_features():
    feats = torch.randn(2, 5, 4, 3)
    logits = torch.full((2, 3, 4, 3), -1e4)
    logits[:, 0, 1, 2] = logits[:, 1, 3, 0] = logits[:, 2, 0, 0] = 0.0
    masks = spatial_softmax(logits)
    pooled = CompositePartMaps(part_pool="sum").pool(feats, masks)
    assert torch.allclose(pooled[:, 0], feats[:, :, 1, 2])
    assert torch.allclose(pooled[:, 1], feats[:, :, 3, 0])
    assert torch.allclose(pooled[:, 2], feats[:, :, 0, 0])
    mean = CompositePartMaps(part_pool="mean").pool(feats, masks)
    assert torch.allclose(mean, pooled / 12)


def test_part_pooling_matches_eqs_4_5_loop():
    feats, masks = torch.randn(2, 4, 3, 2), spatial_softmax(torch.randn(2, 3, 3, 2))
    got = CompositePartMaps(part_pool="mean").pool(feats, masks)
    for n in range(2):
        for r in range(3):
            masked = [[feats[n, :, i, j] * masks[n, r, i, j] for j in range(2)] for i in range(3)]   # eq. 4
            avg = sum(masked[i][j] for i in range(3) for j in range(2)) / 6                         # eq. 5
            assert torch.allclose(got[n, r], avg, atol=1e-6)
    assert torch.allclose(part_pooled_features(feats, masks), got * 6, atol=1e-6)


@pytest.mark.parametrize("t", [1, 2, 5])
def test_tap_weights_in_unit_interval_for_any_t(t):
    net = TemporalAttentionNet(in_channels=6, hidden=4)
    w = net(torch.randn(3, t, 6, 4, 2) * 10)
    assert w.shape == (3, t) and (w >= 0).all() and (w <= 1).all()


def test_tap_scores_each_frame_independently():
    net = TemporalAttentionNet(in_channels=6, hidden=4).eval()
    x = torch.randn(2, 4, 6, 3, 2)
    full = net(x)
    for t in range(4):
        assert torch.allclose(net(x[:, t:t + 1])[:, 0], full[:, t], atol=1e-6)


def test_weighted_sum_matches_eq7_loop():
    f, w = torch.randn(2, 4, 5), torch.rand(2, 4)
    got = weighted_temporal_sum(f, w)
    for b in range(2):
        assert torch.allclose(got[b], sum(w[b, i] * f[b, i] for i in range(4)), atol=1e-6)


def test_rank_loss_matches_eq10_loop():
    spec = get_method("posetap")
    objective = spec.build_objective({"margin": 0.3}, DataInfo(num_classes=4))
    feats = torch.randn(8, 6)
    pid = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    terms = objective({"global": feats, "logits": torch.randn(8, 4)}, {"pid": pid})
    d = pairwise_distance(feats)
    total = 0.0
    for a in range(8):
        d_ap = max(d[a, p].item() for p in range(8) if pid[p] == pid[a])
        d_an = min(d[a, n].item() for n in range(8) if pid[n] != pid[a])
        y = 1.0  # d_an should rank above d_ap
        total += max(0.0, -y * (d_an - d_ap) + 0.3)
    assert terms["rank"].item() == pytest.approx(total / 8, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["rank"].item() + terms["ce"].item(), rel=1e-5)


def _tiny(variant: str, num_classes: int = 3, **extra):
    spec = get_method("posetap")
    params = {"depth": 18, "pretrained": False, "tap_hidden": 8, **extra}
    params.update({k.split(".", 1)[1]: v for k, v in spec.variants[variant].items()})
    return spec, spec.build_model(params, DataInfo(num_classes=num_classes, height=64, width=32))


@pytest.mark.parametrize("variant", ["baseline", "alignnet_avg", "alignnet_tap", "alignnet_tap_renormalised"])
@torch.no_grad()
def test_every_variant_outputs(variant):
    """Backward and finite losses of every variant are tests/models/test_contract.py's; these are the outputs."""
    _, model = _tiny(variant)
    batch = {"frames": torch.randn(4, 2, 3, 64, 32), "pose_maps": torch.rand(4, 2, 57, 8, 4),
             "pid": torch.tensor([0, 0, 2, 2])}
    out = model(batch)
    dim = 512 * (4 if variant != "baseline" else 1)
    assert out["features"].shape == (4, dim) and out["logits"].shape == (4, 3)
    if variant != "baseline":
        masks = out["spatial_maps"]
        assert masks.shape == (4, 2, 3, 2, 1)   # 64x32 frames, ResNet stride 32 -> 2x1 feature maps
        assert torch.allclose(masks.sum(dim=(3, 4)), torch.ones(4, 2, 3))
    if variant.startswith("alignnet_tap"):
        w = out["temporal_weights"]
        assert w.shape == (4, 2, 2) and model.group_names == ("appearance", "parts")
        assert (w >= 0).all() and (w <= 1).all()
    else:
        assert "temporal_weights" not in out


AS_WRITTEN = {"paf": "signed", "part_temperature": 1.0, "part_pool": "mean"}   # eqs. 2-5 exactly as printed
PROJECT = {"paf": "abs", "part_temperature": 0.05, "part_pool": "sum"}


def naive_tap_logit(net: TemporalAttentionNet, x: torch.Tensor) -> torch.Tensor:
    """N of eq. 8 for one frame, written out with F.conv2d and the BN formula: x [C, h, w] -> scalar."""
    import torch.nn.functional as F

    y = F.conv2d(x[None], net.conv1.weight, None, padding=1)[0]
    bn = net.bn
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    y = torch.clamp(y * bn.weight[:, None, None] + bn.bias[:, None, None], min=0)
    y = F.conv2d(y[None], net.conv2.weight, net.conv2.bias, padding=1)[0]
    return y.mean()                                   # pooled over space and channels


def naive_posetap_video(model, frames: torch.Tensor, pose: torch.Tensor, paf: str = "signed",
                        temperature: float = 1.0, pool: str = "mean") -> torch.Tensor:
    """f_video of AlignNet + TAP written from section 3 of the paper, frame by frame, without the model's forward.

    frames [B, T, 3, H, W]; pose [B, T, 57, h, w] at the feature-map size. Uses the model's trained pieces (ResNet
    A, TAP nets N) as black boxes; everything else (eqs. 2-7, 8-9) is spelled out here.
    """
    sets = naive_sets()
    b_n, t_n = frames.shape[:2]
    videos = []
    for b in range(b_n):
        descs, w_app, w_part = [], [], []
        for t in range(t_n):
            fa = model.appearance(frames[b, t][None])[0]                          # eq. 1: [C, h, w]
            c, h, w = fa.shape
            parts, upper = [], None
            for r in range(3):
                chans = [pose[b, t, k].abs() if (paf == "abs" and k >= 19) else pose[b, t, k] for k in sets[r]]
                comp = sum(chans) / len(chans)                                    # eq. 2
                e = torch.exp(comp / temperature)
                rbar = e / e.sum()                                                # eq. 3 (sum over k, n)
                far = fa * rbar                                                   # eq. 4
                if pool == "sum":
                    far = far * (h * w)
                parts.append(far.mean(dim=(1, 2)))                                # eq. 5 (avgpool)
                if r == 0:
                    upper = far                                                   # f_{a,u}: the TAP input
            descs.append(torch.cat([fa.mean(dim=(1, 2)), *parts]))                # eq. 6
            w_app.append(torch.sigmoid(naive_tap_logit(model.tap["appearance"], fa)))      # eqs. 8-9
            w_part.append(torch.sigmoid(naive_tap_logit(model.tap["parts"], upper)))
        c = descs[0].shape[0] // 4
        app = sum(w_app[t] * descs[t][:c] for t in range(t_n))                    # eq. 7, appearance TAP
        prt = sum(w_part[t] * descs[t][c:] for t in range(t_n))                   # eq. 7, the part TAP's weights
        videos.append(torch.cat([app, prt]))
    return torch.stack(videos)


def _naive_case(form: dict, **extra):
    torch.manual_seed(0)
    _, model = _tiny("alignnet_tap", last_stride=1, **form, **extra)
    model.eval()
    frames = torch.randn(2, 3, 3, 64, 32)
    pose = torch.rand(2, 3, 57, 4, 2) * 2 - 1        # 64x32 at stride 16: 4x2 feature maps, no resize
    pose[..., 0, :] += 1.5                           # make the head maps peak at the top, so the parts differ
    return model, frames, pose


@pytest.mark.parametrize("form", [AS_WRITTEN, PROJECT], ids=["as-written", "project"])
def test_alignnet_tap_matches_naive_paper_implementation(form):
    """The whole AlignNet + TAP forward against a naive implementation of eqs. 1-9 (no circularity: the naive
    side never calls the model's forward, only its ResNet and the TAP nets' weights)."""
    model, frames, pose = _naive_case(form)
    with torch.no_grad():
        got = model({"frames": frames, "pose_maps": pose})["global"]
        want = naive_posetap_video(model, frames, pose, form["paf"], form["part_temperature"], form["part_pool"])
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_renormalised_tap_divides_eq7_by_the_sum_of_its_weights():
    """alignnet_tap_renormalised: each TAP group's eq. 7 divided by sum_t w_t of that group's weights (naive
    per-frame loops: appearance weights for the first C dims, the part TAP's for the three part blocks)."""
    model, frames, pose = _naive_case(PROJECT, tap_renormalise=True)
    with torch.no_grad():
        out = model({"frames": frames, "pose_maps": pose})
        plain = naive_posetap_video(model, frames, pose, PROJECT["paf"], PROJECT["part_temperature"],
                                    PROJECT["part_pool"])
    w = out["temporal_weights"]                                          # [B, T, 2]: appearance, parts
    c = model.channels
    for b in range(frames.shape[0]):
        app_sum = sum(w[b, t, 0] for t in range(frames.shape[1]))
        part_sum = sum(w[b, t, 1] for t in range(frames.shape[1]))
        want = torch.cat([plain[b, :c] / app_sum, plain[b, c:] / part_sum])
        assert torch.allclose(out["global"][b], want, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out["global"], plain, rtol=1e-3)
    assert get_method("posetap").variants["alignnet_tap_renormalised"]["model.tap_renormalise"] is True


@pytest.mark.parametrize("key", ["paf", "part_temperature", "part_pool"])
def test_each_as_written_setting_is_checked(key):
    """Each of the three settings changes the output: the model with the project's value of one setting fails the
    naive check of the equations as written (so the check would catch a wrong default sneaking in)."""
    form = {**AS_WRITTEN, key: PROJECT[key]}
    model, frames, pose = _naive_case(form)
    with torch.no_grad():
        got = model({"frames": frames, "pose_maps": pose})["global"]
        want = naive_posetap_video(model, frames, pose)                 # eqs. 2-5 as written
    assert not torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_naive_check_rejects_a_part_tap_reading_the_wrong_part():
    """A deliberately broken model whose part TAP reads the middle-part features f_{a,m} instead of f_{a,u}
    (its first two composite rows swapped for the TAP only) must fail the same naive check."""
    from reid.models.posetap import PoseTAP

    class WrongPartTAP(PoseTAP):
        def forward(self, batch):
            real = self.tap["parts"].forward
            # feed the TAP the middle part: recompute masks, swap rows 0 and 1 in what the TAP sees
            b, t = batch["frames"].shape[:2]
            fa = self.appearance(batch["frames"].flatten(0, 1))
            masks = self.parts(batch["pose_maps"].flatten(0, 1), tuple(fa.shape[-2:]))
            middle = (fa * masks[:, 1:2]).unflatten(0, (b, t))
            self.tap["parts"].forward = lambda _upper: real(middle)
            try:
                return super().forward(batch)
            finally:
                del self.tap["parts"].forward

    model, frames, pose = _naive_case(AS_WRITTEN)
    broken = WrongPartTAP(model.params, DataInfo(num_classes=3, height=64, width=32))
    broken.load_state_dict(model.state_dict())
    broken.eval()
    with torch.no_grad():
        want = naive_posetap_video(model, frames, pose)
        assert torch.allclose(model({"frames": frames, "pose_maps": pose})["global"], want, rtol=1e-4, atol=1e-5)
        got = broken({"frames": frames, "pose_maps": pose})["global"]
    c = model.channels
    assert torch.allclose(got[:, :c], want[:, :c], rtol=1e-4, atol=1e-5)      # appearance TAP untouched
    assert not torch.allclose(got[:, c:], want[:, c:], rtol=1e-4, atol=1e-5)  # the part blocks are caught


def test_naive_check_rejects_swapped_tap_weights():
    """A broken model that weights the appearance block with the part TAP's weights and vice versa fails."""
    model, frames, pose = _naive_case(AS_WRITTEN)
    with torch.no_grad():
        want = naive_posetap_video(model, frames, pose)
        model.tap["appearance"], model.tap["parts"] = model.tap["parts"], model.tap["appearance"]
        got = model({"frames": frames, "pose_maps": pose})["global"]
    assert not torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_missing_pose_maps_is_a_clear_error():
    _, model = _tiny("alignnet_avg")
    with pytest.raises(ReidError, match="pose_maps"):
        model({"frames": torch.randn(2, 2, 3, 64, 32)})
    with pytest.raises(ReidError, match="57"):
        model({"frames": torch.randn(2, 2, 3, 64, 32), "pose_maps": torch.rand(2, 2, 19, 8, 4)})


def test_load_pretrained_skips_a_classifier_of_another_size():
    _, source = _tiny("alignnet_tap", num_classes=5)
    _, target = _tiny("alignnet_tap", num_classes=3)
    skipped = target.load_pretrained({"module." + k: v for k, v in source.state_dict().items()})
    assert skipped == ["classifier.bias", "classifier.weight"]
    for k, v in target.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(v, source.state_dict()[k]), k
    _, avg = _tiny("alignnet_avg", num_classes=3)   # no TAP in the source: TAP keeps its fresh weights
    assert avg.load_pretrained(target.state_dict()) == sorted(k for k in target.state_dict() if k.startswith("tap."))
    _, deeper = _tiny("alignnet_tap", depth=34)
    with pytest.raises(ReidError, match="appearance"):
        target.load_pretrained(deeper.state_dict())


@pytest.mark.parametrize("config", ["posetap", "posetap-mars", "posetap-ilidsvid", "posetap-prid2011",
                                    "posetap-synthetic", "posetap-synthetic-pretrain"])
def test_packaged_configs_resolve_and_lr_mult_matches_every_variant(config):
    for variant in get_method("posetap").variants:
        cfg = build_config("posetap", [config], [f"variant={variant}", "model.pretrained=false", "model.depth=18"])
        assert cfg.data.test_sampler == "dense" and cfg.data.test_chunk_overlap == 0
        assert cfg.data.train_sampler == "consecutive" and cfg.data.test_chunk_len == cfg.data.seq_len
        spec = get_method("posetap")
        model = spec.build_model(cfg.model, DataInfo(num_classes=3))
        groups = param_groups(model, cfg.optim)
        assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_paper_recipes_use_chunks_of_15():
    for config in ("posetap", "posetap-mars", "posetap-ilidsvid", "posetap-prid2011"):
        cfg = build_config("posetap", [config])
        assert (cfg.data.seq_len, cfg.data.test_chunk_len) == (15, 15)
        assert cfg.model["depth"] == 50
    for config, size in (("posetap-ilidsvid", (128, 64)), ("posetap-prid2011", (128, 64)),
                         ("posetap-mars", (256, 128))):
        data = build_config("posetap", [config]).data
        assert (data.height, data.width) == size


@pytest.mark.parametrize("table", ["table1", "table1-ilidsvid", "table1-prid2011", "table2", "table2-ilidsvid",
                                   "table2-prid2011"])
def test_ablation_specs_resolve(table):
    from importlib import resources
    from pathlib import Path

    import yaml

    root = Path(str(resources.files("reid"))).parent / "tune" / "ablations"
    spec = yaml.safe_load((root / f"posetap-{table}.yaml").read_text())
    assert spec["method"] == "posetap" and spec["table"] == f"posetap-{table}"
    for row in spec["rows"]:
        assert row["variant"] in get_method("posetap").variants and set(row["paper"]) == set(spec["metrics"])
        overrides = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in row["overrides"].items()]
        build_config("posetap", [], [f"variant={row['variant']}", *overrides])
    paper = {"table1": [79.7, 82.6, 83.2], "table1-ilidsvid": [75.7, 75.7, 80.7, 86.0],
             "table1-prid2011": [85.4, 90.5, 94.4, 94.4], "table2": [83.2, 84.9, 85.4],
             "table2-ilidsvid": [83.0, 85.9], "table2-prid2011": [96.0, 96.7]}[table]
    plain = [r for r in spec["rows"] if not r["variant"].endswith("_as_written")]
    assert [r["paper"]["R1"] for r in plain] == paper
    # every AlignNet row (but table 1(a)'s no-pretrain row) also runs with eqs. 2-5 as written, same paper number,
    # and the table prints which form each row ran
    written = {r["name"]: r for r in spec["rows"] if r["variant"].endswith("_as_written")}
    for r in plain:
        if r["variant"] != "baseline" and "No synthetic" not in r["name"]:
            twin = written.pop(f"{r['name']} (eqs. 2-5 as written)")
            assert twin["variant"] == f"{r['variant']}_as_written" and twin["paper"] == r["paper"]
            init = r["overrides"].get("train.init_from")
            assert twin["overrides"] == {**r["overrides"], **({"train.init_from": init.replace(
                r["variant"], twin["variant"])} if init else {})}
    assert not written
    assert spec["show"] == ["model.paf", "model.part_temperature", "model.part_pool"]


def test_tap_probe_spec_resolves_and_orders_the_renormalised_row():
    from reid.config import validate_overrides
    from tune.ablation import base_config, load_spec, row_overrides

    spec = load_spec("posetap-tap-probe")
    assert spec.probe and spec.headline == spec.orders[0]
    base = base_config(spec, "synthetic", ["posetap-synth-cpu"], [])
    variants = [validate_overrides(base, row_overrides(spec, r, "synthetic", "full", {}, None)).variant
                for r in spec.rows]
    assert variants == ["alignnet_avg", "alignnet_tap", "alignnet_tap_renormalised", "baseline"]


def test_as_written_variants_set_eqs_2_to_5_as_printed():
    from reid.models.posetap import AS_WRITTEN

    for v in ("alignnet_avg", "alignnet_tap"):
        cfg = build_config("posetap", [], [f"variant={v}_as_written"])
        assert (cfg.model["paf"], cfg.model["part_temperature"], cfg.model["part_pool"]) == ("signed", 1.0, "mean")
        assert cfg.model["pooling"] == v.split("_")[1]
    assert set(AS_WRITTEN) == {"model.paf", "model.part_temperature", "model.part_pool"}
    # what the ablation runner records per row (from the row's resolved config)
    from reid.config import validate_overrides
    from tune.ablation import load_spec, shown_settings

    spec = load_spec("posetap-table1")
    base = build_config("posetap", ["posetap-synthetic"], [])
    assert shown_settings(spec, validate_overrides(base, {"variant": "alignnet_tap_as_written"})) == \
        "paf=signed, part_temperature=1.0, part_pool=mean"
    assert shown_settings(spec, validate_overrides(base, {"variant": "alignnet_tap"})) == \
        "paf=abs, part_temperature=0.05, part_pool=sum"


def test_ablation_table_says_which_form_each_row_ran():
    from tune.ablation import load_spec, render

    spec = load_spec("posetap-table1")
    recorded = {"rows": {"AlignNet + TAP": {"R1": 50.0, "settings": "paf=abs, part_temperature=0.05, part_pool=sum"},
                         "AlignNet + TAP (eqs. 2-5 as written)": {
                             "R1": 40.0, "settings": "paf=signed, part_temperature=1.0, part_pool=mean"}}}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        md = render(spec, recorded, Path(d) / "table").read_text()
    assert "| settings |" in md
    assert "| AlignNet + TAP | alignnet_tap | paf=abs, part_temperature=0.05, part_pool=sum |" in md
    assert "| alignnet_tap_as_written | paf=signed, part_temperature=1.0, part_pool=mean |" in md
    assert "| Baseline | baseline | not run |" in md


@pytest.mark.slow
def test_short_cpu_training_run_learns(tmp_path):
    """AlignNet + TAP on the tiny synthetic set: the loss falls and the mAP beats the untrained model's."""
    history, untrained, tested = short_run_against_untrained(
        "posetap", "posetap-synthetic", tmp_path, "model.pretrained=false", "train.epochs=5", "train.eval_every=5",
        "scheduler.milestones=[100]", "scheduler.warmup_epochs=0")
    assert history[-1]["loss"] < history[0]["loss"]
    assert tested["mAP"] > untrained["mAP"]
