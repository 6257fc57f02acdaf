"""ASA-Net fusion (a) / (b) (sec. III-D, eq. 7) against a naive composition written from the paper.

The five features are computed here from the model's sub-modules (backbone, branch stages, 1x1 convs F_ID / F_re /
F_ir, ASRE, FCs W_re / W_ir, the fusion FC), following eqs. 1-6; then composed as the paper's fusion strategies:
  (a) f_final = [f_re_ID ; f_ID ; f_ir_ID ; f_re_attr]
  (b) f_final = [f_re_ID ; f_ID ; f_ir_ID ; FC([f_re_attr ; f_ir_attr])]
A deliberately broken model (branches concatenated in another order; the two attribute features swapped before the
fusion FC) must fail the same check.
"""

import pytest
import torch

import reid.models.asanet as asanet_module
from reid.data.attributes import schema_from_columns
from reid.registry import DataInfo, get_method

SCHEMA = schema_from_columns({"motion": 5, "pose": 6, "top color": 4, "gender": 2})
INFO = DataInfo(num_classes=3, attributes=SCHEMA, height=32, width=16)


def _model(fusion: str):
    torch.manual_seed(0)
    model = get_method("asanet").build_model(
        {"depth": 18, "pretrained": False, "fusion": fusion, "asre": True, "branches": ["id", "re", "ir"]}, INFO)
    return model.eval()


def naive_f_final(model, frames: torch.Tensor, fusion: str) -> torch.Tensor:
    """frames [B, T, 3, H, W] -> f_final [B, D], composed per sample and frame from the paper's equations."""
    out = []
    for clip in frames:                                        # one tracklet at a time
        feats: dict[str, list[torch.Tensor]] = {k: [] for k in ("re_attr", "ir_attr", "re_id", "id", "ir_id")}
        for frame in clip:
            x0 = model.backbone(frame[None])                   # X_origin (eq. 1)
            x_id, x_re, x_ir = model.stage_id(x0), model.stage_re(x0), model.stage_ir(x0)
            feats["re_attr"].append(model.pool_re_attr(x_re)[0])              # F_SP (eq. 3)
            feats["ir_attr"].append(model.pool_ir_attr(x_ir)[0])              # F_SP (eq. 5)
            feats["id"].append(model.reduce["id"](x_id)[0].mean(dim=(1, 2)))  # eq. 6: F_ID, then F_SP
            for br, attr in (("re", x_re), ("ir", x_ir)):
                enhanced, _ = model.asre[br](model.reduce[br](x_id), attr)    # eqs. 8-10 on F_re(X_ID)
                feats[f"{br}_id"].append(enhanced[0].mean(dim=(1, 2)))
        tp = {k: torch.stack(v).mean(dim=0) for k, v in feats.items()}        # F_TP: temporal average
        f_re_id, f_ir_id = model.fc["re"](tp["re_id"]), model.fc["ir"](tp["ir_id"])      # W_re, W_ir (eqs. 2, 4)
        if fusion == "a":
            extra = tp["re_attr"]
        else:
            extra = model.fuse(torch.cat([tp["re_attr"], tp["ir_attr"]]))
        out.append(torch.cat([f_re_id, tp["id"], f_ir_id, extra]))
    return torch.stack(out)


@pytest.mark.parametrize("fusion", ["a", "b"])
def test_fusion_matches_the_papers_composition(fusion):
    model = _model(fusion)
    frames = torch.randn(2, 2, 3, 32, 16)
    with torch.no_grad():
        got = model({"frames": frames})["global"]
        want = naive_f_final(model, frames, fusion)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fusion", ["a", "b"])
def test_check_rejects_branches_concatenated_in_another_order(fusion, monkeypatch):
    model = _model(fusion)
    frames = torch.randn(2, 2, 3, 32, 16)
    with torch.no_grad():
        want = naive_f_final(model, frames, fusion)
        monkeypatch.setattr(asanet_module, "BRANCH_ORDER", ("id", "re", "ir"))   # broken: [f_ID; f_re_ID; ...]
        got = model({"frames": frames})["global"]
    assert got.shape == want.shape
    assert not torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_check_rejects_swapped_attribute_features_in_fusion_b():
    """Broken model: FC([f_ir_attr ; f_re_attr]) instead of FC([f_re_attr ; f_ir_attr]) (same weights)."""
    model = _model("b")
    frames = torch.randn(2, 2, 3, 32, 16)
    with torch.no_grad():
        want = naive_f_final(model, frames, "b")
        half = model.fuse.weight.shape[1] // 2
        model.fuse.weight.copy_(torch.cat([model.fuse.weight[:, half:], model.fuse.weight[:, :half]], dim=1))
        got = model({"frames": frames})["global"]
    q = model.channels // 4
    assert torch.allclose(got[:, :3 * q], want[:, :3 * q], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got[:, 3 * q:], want[:, 3 * q:], rtol=1e-4, atol=1e-5)


def test_check_rejects_fusion_a_with_the_irrelevant_attribute_feature():
    """Broken model: fusion (a) appends f_ir_attr instead of f_re_attr (the pooling modules swapped)."""
    model = _model("a")
    frames = torch.randn(2, 2, 3, 32, 16)
    with torch.no_grad():
        want = naive_f_final(model, frames, "a")
        model.stage_re, model.stage_ir = model.stage_ir, model.stage_re
        got = model({"frames": frames})["global"]
    assert not torch.allclose(got, want, rtol=1e-4, atol=1e-5)
