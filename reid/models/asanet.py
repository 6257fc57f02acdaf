"""ASA-Net: Attribute Salience Assisted Network (Chai et al., "Video Person Re-identification using Attribute-enhanced
Features"), on the AGW baseline (non-local ResNet, GeM pooling, BNNeck, WRT triplet).

ResNet up to layer3 (C channels) is shared by three branches with their own residual stages (eq. 1): identity
(layer4, 2C), ID-relevant attribute (C/2) and ID-irrelevant attribute (C/2). Two ASRE modules (eqs. 8-10) enhance
the reduced identity map with each attribute map (eqs. 2, 4); five features (eqs. 2-6) are fused by strategy (a)
or (b) (sec. III-D, eq. 7) into f_final, then BNNeck -> ID classifier (eq. 16). Attribute heads W1(relu(BN(W2 f)))
per branch predict the one-vs-rest units of that branch's attribute groups (eqs. 3, 5).

Dimensions follow the operations of eqs. 1-6: f_re_ID, f_ID, f_ir_ID are C/4; the attribute features are pooled
C/2 maps, so they are C/2 (the text's "C/4" for them cannot come from pooling a C/2 map); fusion (b) maps the
concatenated attribute features (C) to C/4 with one FC. f_final: (a) 5C/4, (b) C, table IV subsets n * C/4.

Spatial pooling F_SP: `spatial_pool` (AGW: GeM) pools the non-negative maps, i.e. the attribute stages' outputs
(eqs. 3, 5). The maps after a 1x1 conv (F_re, F_ir, F_ID of eqs. 2, 4, 6) are signed, and GeM is undefined there
(it clamps negatives to eps), so they are average-pooled. Eq. 6 applies F_ID BEFORE F_SP: f_ID = F_TP(F_SP(F_ID(X_ID))).

The packaged default (reid/configs/asanet.yaml) is ASANet-b, the paper's headline MARS model (tables I, V, VII):
fusion (b) with ASRE and without the PMI triplet loss; variant `b-asre-pmi` adds PMI.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from reid.errors import ReidError
from reid.losses.asanet_objective import ASANetLossParams, ASANetObjective, attribute_groups
from reid.models.backbones import resnet_trunk
from reid.models.layers.asre import ASRE
from reid.models.layers.gem import AvgPool, GeM
from reid.models.layers.module import ReidModule
from reid.models.layers.neck import BNNeck
from reid.models.layers.nonlocal_block import with_non_local
from reid.registration import register_method
from reid.spec import DataInfo, Params

Branch = Literal["id", "re", "ir"]
BRANCH_ORDER: tuple[Branch, ...] = ("re", "id", "ir")   # the order of fig. 5


class ASANetParams(Params):
    depth: Literal[18, 34, 50] = Field(50, description="ResNet depth; 18/34 scale every width by C = 256")
    last_stride: Literal[1, 2] = 1
    pretrained: bool = True
    weights_path: str | None = None
    non_local: bool = Field(True, description="AGW non-local blocks (2 after layer2 blocks, 3 after layer3)")
    spatial_pool: Literal["gem", "avg"] = Field("gem", description="F_SP of the non-negative maps (AGW: GeM)")
    branches: list[Branch] = Field(default_factory=lambda: ["id", "re", "ir"],
                                   description="identity / enhanced features that enter f_final (table IV)")
    fusion: Literal["a", "b", "none"] = Field("b", description="(a) adds f_re_attr, (b) FC(f_re_attr, f_ir_attr)")
    asre: bool = Field(True, description="ASRE enhancement; off: X_re_ID = F_re(X_ID) (table V)")
    asre_alpha: float = 1.0
    asre_key_dim: int | None = Field(None, ge=1, description="d_k of eq. 8; None = C/4")
    asre_mask_activation: Literal["none", "sigmoid"] = "none"
    attribute_heads: bool = Field(True, description="attribute prediction heads (off for table VII w/o BCE)")
    attr_hidden: int | None = Field(None, ge=1, description="width of W2 / W4 in eqs. 3, 5; None = C/4")

    @field_validator("branches")
    @classmethod
    def _branches(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("expected a non-empty list of distinct branches among 'id', 're', 'ir'")
        return v


def residual_stage(depth: int, in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    """A ResNet stage of `blocks` residual blocks (Bottleneck for ResNet-50, BasicBlock otherwise), in -> out."""
    block = Bottleneck if depth == 50 else BasicBlock
    planes = out_channels // block.expansion
    down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))
    layers = [block(in_channels, planes, stride=stride, downsample=down)]
    layers += [block(out_channels, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class AttributeHead(nn.Module):
    """Eqs. 3 / 5: f [B, D] -> W1(relu(BN(W2 f))) [B, units]."""

    def __init__(self, in_dim: int, hidden: int, units: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, units))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


class ASANet(ReidModule):
    """frames [B, T, 3, H, W] -> features [B, D] (BNNeck output), global f_final [B, D], logits [B, num_classes],
    re_attr / ir_attr [B, C/2], attr_logits [B, D_attr] (relevant then irrelevant units), spatial_maps
    [B, T, K, h, w] (the ASRE masks M_ASR, K = number of ASRE modules, named in `spatial_map_names`)."""

    def __init__(self, params: ASANetParams, info: DataInfo) -> None:
        super().__init__()
        self.params = p = params
        trunk, _ = resnet_trunk(p.depth, p.pretrained, p.weights_path, p.last_stride)
        stem, layer1, layer2, layer3, layer4 = nn.Sequential(*trunk[:4]), trunk[4], trunk[5], trunk[6], trunk[7]
        c = 1024 if p.depth == 50 else 256                       # C: channels of layer3
        self.channels = c
        if p.non_local:
            layer2, layer3 = with_non_local(layer2, c // 2, 2), with_non_local(layer3, c, 3)
        self.backbone = nn.Sequential(stem, layer1, layer2, layer3)
        self.stage_id = layer4                                   # 2C, keeps the ImageNet weights
        blocks = len(layer4)
        self.stage_re = residual_stage(p.depth, c, c // 2, blocks, p.last_stride)
        self.stage_ir = residual_stage(p.depth, c, c // 2, blocks, p.last_stride)
        q = c // 4
        make_pool = GeM if p.spatial_pool == "gem" else AvgPool
        self.pool_re_attr, self.pool_ir_attr = make_pool(), make_pool()   # F_SP of eqs. 3, 5 (non-negative maps)
        self.reduce = nn.ModuleDict({b: nn.Conv2d(2 * c, q, 1) for b in p.branches})        # F_ID, F_re, F_ir
        self.fc = nn.ModuleDict({b: nn.Linear(q, q) for b in p.branches if b != "id"})     # W_re, W_ir
        self.asre = nn.ModuleDict({b: ASRE(q, c // 2, p.asre_key_dim, p.asre_alpha, p.asre_mask_activation)
                                   for b in p.branches if b != "id"} if p.asre else {})
        self.spatial_map_names = tuple({"re": "id_relevant", "ir": "id_irrelevant"}[b]
                                       for b in BRANCH_ORDER if b in self.asre)
        self.fuse = nn.Linear(c, q) if p.fusion == "b" else None
        self.feature_dim = len(p.branches) * q + {"a": c // 2, "b": q, "none": 0}[p.fusion]
        self.attr_units = {"re": sum(g.width for g in info.attributes.by_kind("relevant")),
                           "ir": sum(g.width for g in info.attributes.by_kind("irrelevant"))}
        self.attr_groups = tuple(g.name for g in attribute_groups(info))
        self.heads = nn.ModuleDict()
        if p.attribute_heads:
            missing = [k for k, n in (("ID-relevant", self.attr_units["re"]),
                                      ("ID-irrelevant", self.attr_units["ir"])) if n == 0]
            if missing:
                raise ReidError(f"asanet: the dataset's attribute schema has no {' and no '.join(missing)} groups; "
                                f"ASA-Net predicts both (MARS / Duke attribute CSVs, or the synthetic set). Prepare "
                                f"the dataset with its attribute CSV, or set model.attribute_heads=false and "
                                f"loss.lambda_bce=0")
            hidden = p.attr_hidden or q
            self.heads["re"] = AttributeHead(c // 2, hidden, self.attr_units["re"])
            self.heads["ir"] = AttributeHead(c // 2, hidden, self.attr_units["ir"])
        self.neck = BNNeck(self.feature_dim, info.num_classes)

    @staticmethod
    def _temporal_mean(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """F_TP: per-frame vectors [B*T, D] -> clip vector [B, D]."""
        return x.unflatten(0, (b, t)).mean(dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        frames = batch["frames"]
        if frames.dim() != 5:
            raise ReidError(f"asanet expects frames [B, T, 3, H, W]; got shape {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        x0 = self.backbone(frames.flatten(0, 1))                 # X_origin [BT, C, h, w]
        x_id = self.stage_id(x0)                                  # X_ID [BT, 2C, h', w']
        x_attr = {"re": self.stage_re(x0), "ir": self.stage_ir(x0)}       # X_re_attr, X_ir_attr [BT, C/2, h', w']
        f_re_attr = self._temporal_mean(self.pool_re_attr(x_attr["re"]), b, t)   # eq. 3
        f_ir_attr = self._temporal_mean(self.pool_ir_attr(x_attr["ir"]), b, t)   # eq. 5
        parts, maps = [], []
        for branch in BRANCH_ORDER:
            if branch not in self.params.branches:
                continue
            x_i = self.reduce[branch](x_id)                       # F_ID / F_re / F_ir (X_ID), [BT, C/4, h', w']
            if branch == "id":
                # eq. 6 in its order: the 1x1 conv F_ID first, then F_SP and F_TP. The conv output is signed, so
                # F_SP is the average (GeM before the conv, the old order, is a different function of X_ID)
                parts.append(self._temporal_mean(x_i.mean(dim=(2, 3)), b, t))
                continue
            if branch in self.asre:
                x_i, mask = self.asre[branch](x_i, x_attr[branch])   # eqs. 8-10
                maps.append(mask)
            # X_re_ID is signed (no ReLU after the 1x1 conv), so it is average-pooled (GeM is undefined there)
            parts.append(self.fc[branch](self._temporal_mean(x_i.mean(dim=(2, 3)), b, t)))   # eqs. 2, 4
        if self.params.fusion == "a":
            parts.append(f_re_attr)
        elif self.params.fusion == "b":
            parts.append(self.fuse(torch.cat([f_re_attr, f_ir_attr], dim=1)))
        f_final = torch.cat(parts, dim=1)                         # eq. 7
        f_bn, logits = self.neck(f_final)                         # eq. 16
        out = {"features": f_bn, "global": f_final, "logits": logits, "re_attr": f_re_attr, "ir_attr": f_ir_attr}
        if self.heads:
            out["attr_logits"] = torch.cat([self.heads["re"](f_re_attr), self.heads["ir"](f_ir_attr)], dim=1)
        if maps:
            out["spatial_maps"] = torch.stack(maps, dim=1).unflatten(0, (b, t))   # [B, T, K, h', w']
        return out


_ALL = ["id", "re", "ir"]
# every row sets lambda_PMI explicitly: the packaged default (ASANet-b) trains without PMI, so a "-pmi" row must not
# inherit the recipe's zeros. 0.005 -> 0.01 once the ID-irrelevant BCE < 0.15 (sec. IV-B)
_PMI = {"loss.lambda_pmi": 0.005, "loss.lambda_pmi_raised": 0.01}
_NO_PMI = {"loss.lambda_pmi": 0.0, "loss.lambda_pmi_raised": 0.0}


def _row(fusion: str, asre: bool, pmi: bool, branches: list[str] = _ALL, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {"model.fusion": fusion, "model.asre": asre, "model.branches": list(branches)}
    return {**row, **(_PMI if pmi else _NO_PMI), **extra}


VARIANTS: dict[str, dict[str, object]] = {
    # table IV (MARS): branch subsets, enhanced features only (no attribute feature fused), with ASRE and PMI
    **{"branches-" + "-".join(bs): _row("none", True, True, bs)
       for bs in (["id"], ["re"], ["ir"], ["id", "re"], ["id", "ir"], ["re", "ir"], _ALL)},
    # table V (MARS) and VI (Duke, the ASRE rows): fusion (a)/(b) x ASRE x PMI
    **{f"{fu}{'-asre' if asre else ''}{'-pmi' if pmi else ''}": _row(fu, asre, pmi)
       for fu in ("a", "b") for asre in (False, True) for pmi in (False, True)},
    # table VII (MARS): ASANet-b with / without attribute supervision (with = row "b-asre")
    "b-asre-nobce": _row("b", True, False, **{"loss.lambda_bce": 0.0, "model.attribute_heads": False}),
}


def _objective(params: ASANetLossParams, info: DataInfo) -> ASANetObjective:
    return ASANetObjective(params, info)


@register_method(
    objective=_objective,
    classifier="neck.classifier",
    model_params=ASANetParams,
    loss_params=ASANetLossParams,
    inputs=frozenset({"frames", "attributes"}),
    batching="pk",
    input_norm="imagenet",
    variants=VARIANTS,
    default_config="asanet",
    description="ASA-Net: identity + ID-relevant / ID-irrelevant attribute branches, ASRE, fusion (a)/(b); "
                "CE-LS + WRT + center + attribute BCE + PMI triplet",
)
def asanet(params: ASANetParams, info: DataInfo) -> ASANet:
    return ASANet(params, info)
