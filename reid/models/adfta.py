"""adfta: attribute-driven feature disentangling and temporal aggregation (Zhao et al., CVPR 2019, section 3.1).

Per frame: ResNet -> global average pool -> fc1, split into N+1 segments (eq. 1): N sub-features, one per
ID-relevant attribute group of the dataset (table 1: gender & age, head, upper body, lower body, shoes, attachments)
and one global segment. Attribute predictor AP_n (one FC + sigmoid) scores the n-th sub-feature of every frame; the
confidence of that prediction (eq. 2) normalised over the T frames (eq. 3) gives the temporal weights w_nt, which
carry no gradient (the dashed arrow of fig. 2). The merged sub-feature is sum_t w_nt f^n_t (eq. 4); the global
segment is averaged with 1/T. AP_n is trained with BCE on the MERGED sub-feature; softmax (ID) on the
concatenation of the N+1 merged segments; at test the L2-normalised concatenation is the embedding.

Table 4's rows are switches: F = `disentangle` (split fc1 into groups), A = `attributes` (attribute loss),
T = `temporal` (confidence weights instead of 1/T). Without F, one predictor over all attributes reads the whole
fc1 feature and T gives one weight per frame ("feature level", model C).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from reid.errors import ReidError
from reid.losses.attributes import group_targets_tensor, masked_bce_with_logits
from reid.losses.objective import Objective
from reid.losses.softmax import cross_entropy_label_smooth
from reid.models.backbones import resnet_trunk
from reid.models.layers.frames import per_frame
from reid.models.layers.module import ReidModule
from reid.registration import register_method
from reid.spec import DataInfo, Params


class ADFTAParams(Params):
    depth: Literal[18, 34, 50] = 18
    pretrained: bool = True
    weights_path: str | None = None
    last_stride: Literal[1, 2] = 2
    segment_dim: int = Field(256, ge=1, description="width of each of the N+1 fc1 segments (paper: not given)")
    fc_bn: bool = Field(True, description="BatchNorm on fc1 (per frame); the paper does not say")
    disentangle: bool = Field(True, description="table 4 'F': split fc1 into N group segments + 1 global")
    attributes: bool = Field(True, description="table 4 'A': attribute predictors trained with BCE")
    temporal: bool = Field(True, description="table 4 'T': attribute-confidence temporal weights (eqs. 2-3)")
    sigma: float = Field(0.5, gt=0, description="sigma of eq. 2; larger = flatter weights")
    entropy: Literal["paper", "bernoulli"] = Field(
        "paper", description="eq. 2 as written (mean p log p) or the Bernoulli form (p log p + (1-p) log(1-p))")

    @model_validator(mode="after")
    def _needs_attributes(self) -> ADFTAParams:
        if (self.temporal or self.disentangle) and not self.attributes:
            raise ValueError("model.temporal and model.disentangle need model.attributes=true: the attribute "
                             "predictors are what disentangles the groups and scores the frames")
        return self


class ADFTALossParams(Params):
    weight_id: float = Field(1.0, ge=0, description="softmax (ID) loss weight")
    weight_attr: float = Field(1.0, ge=0, description="weight of the sum of the N attribute BCE losses")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="0 = the paper's plain softmax loss")


def frame_entropy(probs: torch.Tensor, form: str = "paper") -> torch.Tensor:
    """Ent(p) of eq. 2 over the last axis. probs: [..., A_n] sigmoid outputs -> [...].

    "paper": (1/A_n) sum_i p_i log p_i, as printed. "bernoulli": (1/A_n) sum_i p_i log p_i + (1-p_i) log(1-p_i),
    the negative entropy of each binary prediction. Both are <= 0 and 0 for a fully confident prediction.
    """
    ent = torch.xlogy(probs, probs)
    if form == "bernoulli":
        ent = ent + torch.xlogy(1 - probs, 1 - probs)
    elif form != "paper":
        raise ValueError(f"entropy form '{form}' is not 'paper' or 'bernoulli'")
    return ent.mean(dim=-1)


@torch.no_grad()
def confidence_weights(probs: torch.Tensor, sigma: float, form: str = "paper") -> torch.Tensor:
    """Temporal weights w_nt (eqs. 2-3): Conf = exp(Ent / sigma^2), normalised over the T frames.

    probs: [B, T, A_n] per-frame attribute predictions of one group -> [B, T], rows sum to 1. No gradient (fig. 2).
    exp(x_t) / sum_t exp(x_t) is a softmax over t, which is how it is computed (stable for small sigma).
    """
    return torch.softmax(frame_entropy(probs.float(), form) / float(sigma) ** 2, dim=1)


class ADFTA(ReidModule):
    """frames [B, T, 3, H, W] -> features [B, (N+1) * segment_dim] (L2-normalised concatenation), logits, attribute
    logits [B, sum of group widths] (groups in schema order), temporal_weights [B, T, len(group_names)].
    """

    def __init__(self, params: ADFTAParams, info: DataInfo) -> None:
        super().__init__()
        self.p = params
        groups = tuple(info.attributes.by_kind("relevant"))
        if params.attributes and not groups:
            raise ReidError("adfta needs ID-relevant attribute groups in the dataset's attribute schema (none found); "
                            "give the dataset an attribute file (e.g. from `reid transfer-attributes`) or use "
                            "variant A (no attributes)")
        self.groups = groups
        self.widths = [g.width for g in groups]
        n, d = len(groups), params.segment_dim
        # the weighted segments, in the order of temporal_weights' last axis (the global segment is always 1/T)
        self.group_names: tuple[str, ...] = tuple(g.name for g in groups) if params.disentangle else ("frame",)
        self.backbone, channels = resnet_trunk(params.depth, params.pretrained, params.weights_path,
                                               params.last_stride)
        dim = (n + 1) * d
        self.fc1 = nn.Linear(channels, dim)
        self.fc_bn = nn.BatchNorm1d(dim) if params.fc_bn else nn.Identity()
        if not params.attributes:
            heads: list[nn.Module] = []
        elif params.disentangle:
            heads = [nn.Linear(d, w) for w in self.widths]   # AP_n on the n-th segment
        else:
            heads = [nn.Linear(dim, sum(self.widths))]       # one predictor on the whole feature
        self.predictors = nn.ModuleList(heads)
        self.classifier = nn.Linear(dim, info.num_classes)
        # small initial logits: the softmax loss starts near log(num_classes) instead of far above it
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)
        self.feature_dim = dim

    def _pool(self, feats: torch.Tensor, head: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
        """feats [B, T, d] -> (merged [B, d] by eq. 4, weights [B, T]); uniform 1/T when T is off."""
        b, t = feats.shape[:2]
        if self.p.temporal and head is not None:
            with torch.no_grad():
                probs = torch.sigmoid(head(feats))
            w = confidence_weights(probs, self.p.sigma, self.p.entropy).to(feats.dtype)
        else:
            w = feats.new_full((b, t), 1.0 / t)
        return (w.unsqueeze(-1) * feats).sum(dim=1), w

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        frames = batch["frames"]
        b, t = frames.shape[:2]
        x = per_frame(self.backbone, frames).mean(dim=(3, 4))            # [B, T, C]
        f = self.fc_bn(self.fc1(x).flatten(0, 1)).unflatten(0, (b, t))    # [B, T, (N+1) d]
        heads = list(self.predictors)
        if self.p.disentangle:
            segments = f.split(self.p.segment_dim, dim=-1)                 # eq. 1: N local + 1 global
            merged, weights, attr_logits = [], [], []
            for n, head in enumerate(heads):
                m, w = self._pool(segments[n], head)
                merged.append(m)
                weights.append(w)
                attr_logits.append(head(m))                                # BCE on the merged sub-feature
            merged.append(segments[-1].mean(dim=1))                        # global segment: 1/T
            concat = torch.cat(merged, dim=1)
            temporal = torch.stack(weights, dim=-1) if weights else f.new_full((b, t, 0), 1.0 / t)
        else:
            head = heads[0] if heads else None
            concat, w = self._pool(f, head)
            attr_logits = [head(concat)] if head is not None else []
            temporal = w.unsqueeze(-1)
        out = {
            "features": F.normalize(concat, dim=1),                        # test: L2-normalised concatenation
            "embedding": concat,
            "logits": self.classifier(concat),
            "temporal_weights": temporal,
        }
        if attr_logits:
            out["attr_logits"] = torch.cat(attr_logits, dim=1)
        return out


class ADFTAObjective(Objective):
    """Softmax on the concatenation + the N attribute BCE losses (one per group, one-vs-rest, masked)."""

    def __init__(self, params: ADFTALossParams, info: DataInfo) -> None:
        super().__init__({"id": params.weight_id, "attr": params.weight_attr})
        self.p = params
        self.schema = info.attributes
        self.groups = tuple(info.attributes.by_kind("relevant"))

    def terms(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {"id": cross_entropy_label_smooth(outputs["logits"], batch["pid"], self.p.label_smoothing)}
        if "attr_logits" in outputs:
            if "attributes" not in batch:
                raise ReidError("adfta's attribute loss needs batch['attributes']; the dataset has no attribute labels")
            chunks = outputs["attr_logits"].split([g.width for g in self.groups], dim=1)
            out["attr"] = sum(masked_bce_with_logits(c, *group_targets_tensor(batch["attributes"], g, self.schema))
                              for c, g in zip(chunks, self.groups, strict=True))
        return out


_FULL = {"model.disentangle": True, "model.attributes": True, "model.temporal": True}
# Table 4 of the paper (F: disentangling, A: attribute loss, T: confidence weights, sigma of eq. 2).
VARIANTS: dict[str, dict[str, object]] = {
    "A": {"model.disentangle": False, "model.attributes": False, "model.temporal": False},
    "B": {"model.disentangle": False, "model.attributes": True, "model.temporal": False},
    "C": {"model.disentangle": False, "model.attributes": True, "model.temporal": True, "model.sigma": 0.5},
    "D": {"model.disentangle": True, "model.attributes": True, "model.temporal": False},
    "E": {**_FULL, "model.sigma": 0.3},
    "F": {**_FULL, "model.sigma": 0.5},
    "G": {**_FULL, "model.sigma": 0.9},
    "H": {**_FULL, "model.sigma": 1.2},
}

def _objective(params: ADFTALossParams, info: DataInfo) -> ADFTAObjective:
    return ADFTAObjective(params, info)


@register_method(
    objective=_objective,
    classifier="classifier",
    model_params=ADFTAParams,
    loss_params=ADFTALossParams,
    inputs=frozenset({"frames", "attributes"}),
    variants=VARIANTS,
    default_config="adfta",
    description="attribute-driven feature disentangling + confidence-weighted temporal aggregation; "
                "softmax + N attribute BCE",
)
def adfta(params: ADFTAParams, info: DataInfo) -> ADFTA:
    return ADFTA(params, info)
