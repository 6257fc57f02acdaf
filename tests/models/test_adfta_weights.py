"""adfta model C (table 4): one confidence weight per frame from ONE attribute predictor over the whole fc1 feature
(eqs. 2-4 at feature level), checked against a naive implementation written from the paper, and a deliberately
broken model (uniform weights; the Bernoulli entropy instead of eq. 2 as printed) must fail the same check."""

import math

import pytest
import torch

from reid.data.attributes import schema_from_columns
from reid.models.adfta import VARIANTS
from reid.registry import DataInfo, get_method

SCHEMA = schema_from_columns({"gender": 2, "top color": 4, "hat": 2})


def _model_c(**extra):
    torch.manual_seed(0)
    params = {k.split(".", 1)[1]: v for k, v in VARIANTS["C"].items()}
    model = get_method("adfta").build_model({"depth": 18, "pretrained": False, "segment_dim": 4, **params, **extra},
                                            DataInfo(3, SCHEMA, 64, 32)).eval()
    with torch.no_grad():
        model.predictors[0].weight.mul_(20.0)      # spread the predictions so the frames' confidences differ
    return model


def naive_model_c(model, frames: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """frames [B, T, 3, H, W] -> (weights [B, T], merged feature [B, D]) by eqs. 2-4, scalar loops."""
    weights, merged = [], []
    for clip in frames:
        f = [model.fc_bn(model.fc1(model.backbone(fr[None]).mean(dim=(2, 3))))[0] for fr in clip]   # per frame
        conf = []
        for ft in f:
            p = torch.sigmoid(model.predictors[0](ft)).tolist()                # AP over all A attributes
            ent = sum(pi * math.log(pi) for pi in p) / len(p)                   # eq. 2: (1/A) sum p log p
            conf.append(math.exp(ent / sigma ** 2))                             # Conf = exp(Ent / sigma^2)
        w = [c / sum(conf) for c in conf]                                       # eq. 3
        weights.append(torch.tensor(w))
        merged.append(sum(wt * ft for wt, ft in zip(w, f, strict=True)))        # eq. 4
    return torch.stack(weights), torch.stack(merged)


def test_model_c_weights_and_merge_match_eqs_2_to_4():
    model = _model_c()
    frames = torch.randn(2, 4, 3, 64, 32)
    with torch.no_grad():
        out = model({"frames": frames})
        w, merged = naive_model_c(model, frames, model.p.sigma)
    assert model.p.sigma == 0.5 and out["temporal_weights"].shape == (2, 4, 1)
    assert torch.allclose(out["temporal_weights"][..., 0], w.float(), atol=1e-5)
    assert torch.allclose(out["embedding"], merged, rtol=1e-4, atol=1e-5)
    assert (w.max(dim=1).values - w.min(dim=1).values > 0.01).all()   # the check has non-uniform weights to see


@pytest.mark.parametrize("broken", [{"temporal": False}, {"entropy": "bernoulli"}, {"sigma": 1.2}],
                         ids=["uniform-weights", "bernoulli-entropy", "wrong-sigma"])
def test_check_rejects_a_broken_model_c(broken):
    model = _model_c(**broken)
    frames = torch.randn(2, 4, 3, 64, 32)
    with torch.no_grad():
        out = model({"frames": frames})
        w, merged = naive_model_c(model, frames, 0.5)
    assert not torch.allclose(out["temporal_weights"][..., 0], w.float(), atol=1e-5)
    assert not torch.allclose(out["embedding"], merged, rtol=1e-4, atol=1e-5)
