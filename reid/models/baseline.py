"""Baseline: ResNet frames -> temporal average pooling -> BNNeck -> ID classifier; CE (label smoothing) + batch-hard
triplet. The "Baseline" row of every paper's table (e.g. adfta table 4 row A, posetap table 1 "Baseline").
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from reid.losses.metric import batch_hard_triplet
from reid.losses.objective import Objective
from reid.losses.softmax import cross_entropy_label_smooth
from reid.models.backbones import resnet_trunk
from reid.models.layers.frames import per_frame
from reid.models.layers.module import ReidModule
from reid.models.layers.neck import BNNeck
from reid.registration import register_method
from reid.spec import DataInfo, Params


class BaselineParams(Params):
    depth: Literal[18, 34, 50] = 50
    last_stride: Literal[1, 2] = 1
    pretrained: bool = True
    weights_path: str | None = None


class BaselineLossParams(Params):
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    triplet_margin: float = Field(0.3, ge=0)
    triplet_metric: Literal["euclidean", "cosine"] = "euclidean"
    weight_ce: float = Field(1.0, ge=0)
    weight_triplet: float = Field(1.0, ge=0)


class Baseline(ReidModule):
    """frames [B, T, 3, H, W] (normalised) -> features [B, D]; D = 512 (ResNet-18/34) or 2048 (ResNet-50)."""

    def __init__(self, params: BaselineParams, info: DataInfo) -> None:
        super().__init__()
        self.backbone, dim = resnet_trunk(params.depth, params.pretrained, params.weights_path, params.last_stride)
        self.neck = BNNeck(dim, info.num_classes)

    def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        maps = per_frame(self.backbone, batch["frames"])        # [B, T, D, h, w]
        frame_feats = maps.mean(dim=(3, 4))                      # [B, T, D]
        return frame_feats.mean(dim=1)                           # temporal average pooling, [B, D]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pooled = self.pooled(batch)
        f_bn, logits = self.neck(pooled)
        return {"features": f_bn, "global": pooled, "logits": logits}

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The BN-neck feature [B, D] without the ID classifier."""
        return self.neck.bn(self.pooled(batch))


class BaselineObjective(Objective):
    def __init__(self, params: BaselineLossParams) -> None:
        super().__init__({"ce": params.weight_ce, "triplet": params.weight_triplet})
        self.p = params

    def terms(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            "ce": cross_entropy_label_smooth(outputs["logits"], batch["pid"], self.p.label_smoothing),
            "triplet": batch_hard_triplet(outputs["global"], batch["pid"], self.p.triplet_margin,
                                          self.p.triplet_metric),
        }


def _objective(params: BaselineLossParams, info: DataInfo) -> BaselineObjective:
    return BaselineObjective(params)


@register_method(
    objective=_objective,
    classifier="neck.classifier",
    model_params=BaselineParams,
    loss_params=BaselineLossParams,
    inputs=frozenset({"frames"}),
    default_config="baseline",
    description="ResNet + temporal average pooling + BNNeck; CE (label smoothing) + batch-hard triplet",
)
def baseline(params: BaselineParams, info: DataInfo) -> Baseline:
    return Baseline(params, info)
