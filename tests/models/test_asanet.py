"""ASA-Net: structure, every variant at a tiny size, the eq. 19 objective and its lambda_PMI schedule, configs,
ablation specs, and a short CPU training run on the tiny synthetic set."""

import math
from importlib import resources
from pathlib import Path

import pytest
import torch
import yaml

from reid.config import build_config
from reid.data.attributes import schema_from_columns
from reid.errors import ReidError
from reid.losses.attributes import masked_bce_with_logits
from reid.losses.center import center_loss
from reid.losses.pmi import pmi_triplet_loss
from reid.losses.softmax import cross_entropy_label_smooth
from reid.losses.wrt import weighted_regularized_triplet
from reid.registry import DataInfo, get_method
from tests.models.shared import short_run_against_untrained

SCHEMA = schema_from_columns({"motion": 5, "pose": 6, "top color": 4, "gender": 2, "hat": 2, "age": 3})
INFO = DataInfo(num_classes=3, attributes=SCHEMA, height=32, width=16)
UNITS_RE, UNITS_IR = 4 + 1 + 1 + 3, 5 + 6          # one-vs-rest units of each attribute branch
TINY = {"depth": 18, "pretrained": False}
SPEC = get_method("asanet")


def _batch(b: int = 6, t: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    classes = torch.tensor([c.num_classes for c in SCHEMA.columns])
    attrs = (torch.rand(b, len(classes), generator=g) * classes).long()
    attrs[0, 2] = -1                                                # a missing label is masked out
    return {"frames": torch.randn(b, t, 3, 32, 16, generator=g), "pid": torch.tensor([0, 0, 0, 2, 2, 2])[:b],
            "camid": torch.zeros(b, dtype=torch.long), "attributes": attrs}


def _split(overrides: dict) -> tuple[dict, dict]:
    model = {k[6:]: v for k, v in overrides.items() if k.startswith("model.")}
    loss = {k[5:]: v for k, v in overrides.items() if k.startswith("loss.")}
    return model, loss


@pytest.mark.parametrize("variant", sorted(SPEC.variants))
@torch.no_grad()
def test_every_variant_outputs_and_loss_terms(variant):
    """Backward, finite losses and every parameter reached (DDP without find_unused_parameters) are
    tests/models/test_contract.py's; these are ASA-Net's outputs and loss terms."""
    model_p, loss_p = _split(SPEC.variants[variant])
    model = SPEC.build_model({**TINY, **model_p}, INFO).train()
    objective = SPEC.build_objective(loss_p, INFO).train()
    batch = _batch(t=1)
    out = model(batch)
    losses = objective(out, batch)
    assert out["features"].shape == (6, model.feature_dim) and out["logits"].shape == (6, 3)
    expected = {"ce", "wrt", "center", "loss", "lambda_pmi"}
    expected |= {"bce", "bce_ir"} if model_p.get("attribute_heads", True) else set()
    expected |= set() if loss_p.get("lambda_pmi_raised", 1.0) == 0 else {"pmi"}
    assert set(losses) == expected
    k = len([b for b in model_p["branches"] if b != "id"])
    if model_p["asre"] and k:
        assert out["spatial_maps"].shape[:3] == (6, 1, k) and len(model.spatial_map_names) == k
    else:
        assert "spatial_maps" not in out


def test_dimensions_follow_eqs_1_to_7():
    a = SPEC.build_model({**TINY, "fusion": "a"}, INFO)
    b = SPEC.build_model({**TINY, "fusion": "b"}, INFO)
    re_only = SPEC.build_model({**TINY, "fusion": "none", "branches": ["re"]}, INFO)
    assert (a.feature_dim, b.feature_dim, re_only.feature_dim) == (3 * 64 + 128, 4 * 64, 64)   # C = 256
    out = b.eval()(_batch())
    assert out["re_attr"].shape == (6, 128) and out["ir_attr"].shape == (6, 128)
    assert out["attr_logits"].shape == (6, UNITS_RE + UNITS_IR)
    assert out["spatial_maps"].shape == (6, 2, 2, 2, 1) and b.spatial_map_names == ("id_relevant", "id_irrelevant")
    assert b.attr_groups == ("gender_age", "head", "upper", "motion", "pose")


def test_resnet50_widths():
    model = SPEC.build_model({"depth": 50, "pretrained": False, "non_local": False}, INFO).eval()
    assert model.channels == 1024 and model.feature_dim == 1024
    assert model.stage_id[-1].conv3.out_channels == 2048 and model.stage_re[-1].conv3.out_channels == 512
    assert SPEC.build_model({"depth": 50, "pretrained": False, "fusion": "a"}, INFO).feature_dim == 1280
    with torch.no_grad():
        out = model({"frames": torch.randn(2, 1, 3, 32, 16)})
    assert out["features"].shape == (2, 1024) and out["ir_attr"].shape == (2, 512)


def test_objective_is_eq_19_and_bce_covers_both_branches():
    params = {"lambda_cent": 0.3, "lambda_bce": 1.5, "lambda_pmi": 0.2, "lambda_pmi_raised": 0.4}
    objective = SPEC.build_objective(params, INFO).eval()
    torch.manual_seed(0)
    out = {"global": torch.randn(6, 10), "logits": torch.randn(6, 3), "ir_attr": torch.randn(6, 4),
           "attr_logits": torch.randn(6, UNITS_RE + UNITS_IR)}
    batch = _batch()
    losses = objective(out, batch)
    pid = batch["pid"]
    targets, mask = objective.attribute_targets(batch["attributes"])
    assert targets.shape == (6, UNITS_RE + UNITS_IR) and float(mask[0].sum()) < UNITS_RE + UNITS_IR
    ref = {"ce": cross_entropy_label_smooth(out["logits"], pid, 0.1),
           "wrt": weighted_regularized_triplet(out["global"], pid),
           "center": center_loss(out["global"], pid, objective.center.centers[:, :10].detach()),
           "bce": masked_bce_with_logits(out["attr_logits"], targets, mask),
           "pmi": pmi_triplet_loss(out["global"], out["ir_attr"], pid)}
    for k, v in ref.items():
        assert torch.allclose(losses[k], v, atol=1e-6), k
    # the pose / motion BCE is logged apart (it drives the lambda_PMI switch) but is not added a second time
    ir = slice(UNITS_RE, None)
    assert torch.allclose(losses["bce_ir"], masked_bce_with_logits(out["attr_logits"][:, ir], targets[:, ir],
                                                                   mask[:, ir]), atol=1e-6)
    total = ref["ce"] + ref["wrt"] + 0.3 * ref["center"] + 1.5 * ref["bce"] + 0.2 * ref["pmi"]
    assert torch.allclose(losses["loss"], total, atol=1e-6)


def test_center_gradient_split_and_own_lr():
    objective = SPEC.build_objective({"weight_ce": 0, "weight_wrt": 0, "lambda_bce": 0, "lambda_pmi": 0,
                                      "lambda_pmi_raised": 0, "lambda_cent": 0.01}, INFO)
    assert objective.own_lr == 0.5 and [n for n, _ in objective.named_parameters()] == ["center.centers"]
    f = torch.randn(6, 8, requires_grad=True)
    objective({"global": f}, _batch())["loss"].backward()
    f_ref = f.detach().clone().requires_grad_(True)
    c_ref = objective.center.centers.detach()[:, :8].clone().requires_grad_(True)
    center_loss(f_ref, _batch()["pid"], c_ref).backward()
    assert torch.allclose(f.grad, 0.01 * f_ref.grad, atol=1e-7)                  # features: lambda_cent * dL/df
    assert torch.allclose(objective.center.centers.grad[:, :8], c_ref.grad)     # centers: unweighted dL/dc


PMI_ON = {"lambda_cent": 0.0005, "lambda_bce": 1.5, "lambda_pmi": 0.005, "lambda_pmi_raised": 0.01}


def test_lambda_pmi_schedule_is_latched_and_checkpointed():
    objective = SPEC.build_objective(PMI_ON, INFO).train()
    batch = _batch()
    targets, _ = objective.attribute_targets(batch["attributes"])
    out = {"global": torch.randn(6, 8), "logits": torch.randn(6, 3), "ir_attr": torch.randn(6, 4)}
    bad = objective({**out, "attr_logits": torch.zeros_like(targets)}, batch)        # BCE = log 2 > 0.15
    assert float(bad["lambda_pmi"]) == pytest.approx(0.005) and not bool(objective.pmi_raised)
    good_logits = (targets * 2 - 1) * 20.0                                            # BCE ~ 0
    objective.eval()(({**out, "attr_logits": good_logits}), batch)
    assert not bool(objective.pmi_raised)                                             # evaluation never switches
    good = objective.train()({**out, "attr_logits": good_logits}, batch)
    assert float(good["bce"]) < 0.15 and float(good["lambda_pmi"]) == pytest.approx(0.01)
    again = objective({**out, "attr_logits": torch.zeros_like(targets)}, batch)      # stays raised
    assert float(again["lambda_pmi"]) == pytest.approx(0.01)
    assert torch.allclose(again["loss"] - 0.01 * again["pmi"],
                          again["ce"] + again["wrt"] + 0.0005 * again["center"] + 1.5 * again["bce"], atol=1e-6)
    fresh = SPEC.build_objective(PMI_ON, INFO)
    fresh.load_state_dict(objective.state_dict())
    assert "pmi_raised" in objective.state_dict() and bool(fresh.pmi_raised)


def test_lambda_pmi_switch_reads_the_pose_motion_bce_only():
    """Sec. IV-B raises lambda_PMI when "the prediction of pose and motion is accurate enough": the switch reads the
    BCE of the ID-irrelevant units (the last UNITS_IR columns), not the combined BCE of both branches."""
    batch = _batch()
    out = {"global": torch.randn(6, 8), "logits": torch.randn(6, 3), "ir_attr": torch.randn(6, 4)}
    targets, mask = SPEC.build_objective(PMI_ON, INFO).attribute_targets(batch["attributes"])
    perfect = (targets * 2 - 1) * 20.0
    # ID-relevant units perfect, pose / motion right but unsure (BCE 0.2 per unit, logit -log(e^0.2 - 1)):
    # combined BCE ~ 0.2 * 66 / 116 labelled units < 0.15 (the old switch fired), pose / motion BCE 0.2 > 0.15
    re_good = perfect.clone()
    re_good[:, UNITS_RE:] = (targets[:, UNITS_RE:] * 2 - 1) * -math.log(math.exp(0.2) - 1)
    objective = SPEC.build_objective(PMI_ON, INFO).train()
    losses = objective({**out, "attr_logits": re_good}, batch)
    assert float(losses["bce"]) < 0.15 < float(losses["bce_ir"])
    assert not bool(objective.pmi_raised) and float(losses["lambda_pmi"]) == pytest.approx(0.005)
    # pose / motion perfect, ID-relevant units at chance: combined BCE > 0.15 (the old switch stayed off)
    ir_good = perfect.clone()
    ir_good[:, :UNITS_RE] = 0.0
    objective = SPEC.build_objective(PMI_ON, INFO).train()
    losses = objective({**out, "attr_logits": ir_good}, batch)
    assert float(losses["bce_ir"]) < 0.15 < float(losses["bce"])
    assert bool(objective.pmi_raised) and float(losses["lambda_pmi"]) == pytest.approx(0.01)


def naive_f_id(model, frames: torch.Tensor) -> torch.Tensor:
    """Eq. 6 in the paper's order, written out: X_ID_ID = F_ID(X_ID) (a 1x1 conv, one dot product per pixel), then
    F_SP (spatial mean of the signed map) and F_TP (mean over the T frames). frames [B, T, 3, H, W] -> [B, C/4]."""
    b, t = frames.shape[:2]
    x_id = model.stage_id(model.backbone(frames.flatten(0, 1)))             # [BT, 2C, h, w]
    conv = model.reduce["id"]
    w, bias = conv.weight[:, :, 0, 0], conv.bias                             # [C/4, 2C], [C/4]
    n, _, h, wd = x_id.shape
    out = torch.zeros(n, w.shape[0])
    for i in range(h):
        for j in range(wd):
            out += x_id[:, :, i, j] @ w.t() + bias                           # F_ID at pixel (i, j)
    return (out / (h * wd)).unflatten(0, (b, t)).mean(dim=1)


def test_identity_feature_follows_eq_6_order():
    torch.manual_seed(0)
    model = SPEC.build_model({**TINY, "spatial_pool": "gem", "fusion": "none", "branches": ["id"],
                              "attribute_heads": False}, DataInfo(num_classes=3)).eval()
    frames = torch.randn(2, 3, 3, 64, 32)
    with torch.no_grad():
        got = model({"frames": frames})["global"]
        want = naive_f_id(model, frames)
        assert torch.allclose(got, want, atol=1e-4)
        # the old order, GeM (p = 3) on X_ID and then F_ID, is a different feature: this test would fail on it
        from reid.models.layers.gem import gem
        x_id = model.stage_id(model.backbone(frames.flatten(0, 1)))
        old = model.reduce["id"](gem(x_id, 3.0)[:, :, None, None]).flatten(1).unflatten(0, (2, 3)).mean(dim=1)
        assert not torch.allclose(old, want, atol=1e-2)


def test_missing_attributes_are_clear_errors():
    bare = DataInfo(num_classes=3)
    with pytest.raises(ReidError, match="attribute_heads=false"):
        SPEC.build_model(TINY, bare)
    with pytest.raises(ReidError, match="lambda_bce=0"):
        SPEC.build_objective({}, bare)
    model_p, loss_p = _split(SPEC.variants["b-asre-nobce"])
    model = SPEC.build_model({**TINY, **model_p}, bare)
    objective = SPEC.build_objective(loss_p, bare)
    batch = {k: v for k, v in _batch().items() if k != "attributes"}
    assert torch.isfinite(objective(model(batch), batch)["loss"])
    with pytest.raises(ReidError, match="no 'attributes'"):
        full = SPEC.build_objective({}, INFO)
        full(SPEC.build_model(TINY, INFO)(batch), batch)


def test_packaged_configs_and_variants_resolve():
    cfg = build_config("asanet", [], [])
    assert (cfg.data.seq_len, cfg.data.ids_per_batch, cfg.data.tracklets_per_id) == (6, 8, 4)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 3e-4, 5e-4)
    assert cfg.scheduler.milestones == [100, 250, 350] and cfg.train.epochs == 700
    # the paper's headline model ASANet-b (tables I, V, VII): fusion b, ASRE, no PMI; the paper text's weights
    assert (cfg.model["fusion"], cfg.model["asre"], cfg.model["branches"]) == ("b", True, ["id", "re", "ir"])
    assert (cfg.loss["lambda_pmi"], cfg.loss["lambda_pmi_raised"]) == (0.0, 0.0)
    assert (cfg.loss["lambda_cent"], cfg.loss["lambda_bce"], cfg.loss["center_lr"]) == (1.5, 0.0005, 0.5)
    assert build_config("asanet", [], ["variant=b-asre"]).loss == cfg.loss
    pmi = build_config("asanet", [], ["variant=b-asre-pmi"])
    assert (pmi.loss["lambda_pmi"], pmi.loss["lambda_pmi_raised"]) == (0.005, 0.01)
    for files in (["asanet-mars-lambda-swapped"], ["asanet-lambda-swapped"], ["asanet-synthetic", "asanet-lambda-swapped"],
                  ["asanet-duke", "asanet-lambda-swapped"]):
        swapped = build_config("asanet", files, [])
        assert (swapped.loss["lambda_cent"], swapped.loss["lambda_bce"]) == (0.0005, 1.5), files
    paper = build_config("asanet", ["asanet-synthetic", "asanet-lambda-paper"], [])
    assert (paper.loss["lambda_cent"], paper.loss["lambda_bce"]) == (1.5, 0.0005)
    synthetic = build_config("asanet", ["asanet-synthetic"], [])
    assert (synthetic.loss["lambda_cent"], synthetic.loss["lambda_bce"], synthetic.loss["lambda_pmi"]) == (1.5, 0.0005, 0)
    assert build_config("asanet", ["asanet-duke"], []).data.dataset == "duke"
    assert build_config("asanet", ["asanet-mars"], []).data.dataset == "mars"
    assert build_config("asanet", ["asanet-synthetic"], []).model["depth"] == 18
    for variant in SPEC.variants:
        build_config("asanet", ["asanet-synthetic"], [f"variant={variant}"])


@pytest.mark.parametrize("table,rows", [("table4", 7), ("table5", 8), ("table6", 4), ("table7", 2)])
def test_ablation_specs_name_existing_variants(table, rows):
    root = Path(str(resources.files("reid"))).parent / "tune" / "ablations"
    spec = yaml.safe_load((root / f"asanet-{table}.yaml").read_text())
    assert spec["method"] == "asanet" and spec["table"] == f"asanet-{table}" and len(spec["rows"]) == rows
    for row in spec["rows"]:
        assert row["variant"] in SPEC.variants
        assert set(row["paper"]) == set(spec["metrics"]) == {"mAP", "R1", "R5", "R20"}
    assert len({r["variant"] for r in spec["rows"]}) == rows


@pytest.mark.slow
def test_short_cpu_training_run_learns(tmp_path):
    history, untrained, tested = short_run_against_untrained(
        "asanet", "asanet-synthetic", tmp_path, "model.pretrained=false", "train.epochs=6", "train.eval_every=6",
        "scheduler.milestones=[100]", "optim.lr=1e-3", "variant=b-asre-pmi")   # ASANet-b-PMI: the PMI term runs
    losses = [h["loss"] for h in history]
    assert (losses[-1] + losses[-2]) / 2 < losses[0]
    assert max(h["train/pmi"] for h in history) > 0          # K = 3: AP and AN differ
    assert tested["mAP"] > untrained["mAP"]


def test_training_sizes_the_centers_to_the_models_feature_width(tmp_path):
    from reid.models.factory import build_method

    cfg = build_config("asanet", ["asanet-synthetic"], ["model.pretrained=false", f"data.root={tmp_path}"])
    built = build_method(cfg, INFO, train=True)
    model, objective = built.model, built.objective
    assert objective.center.centers.shape == (INFO.num_classes, model.feature_dim)
    assert model.feature_dim < objective.p.center_max_dim  # not the fallback width
