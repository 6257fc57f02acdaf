"""posetap: pose-guided body-part alignment + temporal attention pooling (Jones & Rambhatla, BMVC 2019).

Per frame (section 3.2): ResNet appearance maps f_a [C, h, w] (eq. 1); three composite part masks from the OpenPose
maps (eqs. 2-3, `reid.models.layers.part_maps`); masked part features (eq. 4); the frame descriptor
[avgpool(f_a); f_u; f_m; f_l] of 4 x C (eqs. 5-6). Over time (section 3.3): one TAP net on the appearance maps and
one on the upper-part masked maps, whose weights are shared by the three part blocks; f_video = sum_t w_t f_t
(eq. 7, `reid.models.layers.tap`). Loss (section 3.4): K-way softmax CE + batch-hard margin ranking loss (eq. 10).

Variants (table 1(b)): `baseline` (ResNet + temporal average pooling), `alignnet_avg` (AlignNet + AvgPool),
`alignnet_tap` (AlignNet + TAP, the full model and the default); `alignnet_avg_as_written` / `alignnet_tap_as_written`
run eqs. 2-5 exactly as printed (`AS_WRITTEN`: model.paf=signed, model.part_temperature=1, model.part_pool=mean)
instead of the recipes' form (|PAF|, temperature 0.05, weighted sum); docs/methods/posetap.md has the measurement.
`alignnet_tap_renormalised` (not in the paper) divides eq. 7 by sum_t w_t: TAP's selection without its scale.

Submodule names are the `optim.lr_mult` prefixes: `appearance` (the ResNet), `tap` (the TAP nets), `classifier`.
The pose maps are rendered from keypoints and frozen, so the paper's "OpenPose" learning rate has nothing to act on.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from reid.errors import ReidError
from reid.losses.metric import batch_hard_triplet
from reid.losses.objective import Objective
from reid.losses.softmax import cross_entropy_label_smooth
from reid.models.backbones import resnet_trunk
from reid.models.layers.frames import per_frame
from reid.models.layers.module import ReidModule
from reid.models.layers.neck import BNNeck
from reid.models.layers.part_maps import NUM_POSE_CHANNELS, PART_NAMES, CompositePartMaps
from reid.models.layers.tap import TemporalAttentionNet, weighted_temporal_sum
from reid.registration import register_method
from reid.spec import DataInfo, Params

log = logging.getLogger(__name__)


class PoseTAPParams(Params):
    depth: Literal[18, 34, 50] = Field(50, description="ResNet depth; the paper uses 50")
    last_stride: Literal[1, 2] = Field(2, description="2 = ResNet-50 as the paper uses it (H/32 maps)")
    pretrained: bool = True
    weights_path: str | None = None
    align: bool = Field(True, description="AlignNet: add the three part blocks (eqs. 2-6)")
    pooling: Literal["avg", "tap"] = Field("tap", description="temporal pooling: average or TAP (eq. 7)")
    tap_hidden: int = Field(256, ge=1, description="channels of the TAP nets' convolutions (not in the paper)")
    tap_renormalise: bool = Field(False, description="eq. 7 divided by sum_t w_t, a weighted mean (not in the "
                                  "paper: TAP's frame selection without its scale, a probe of docs/tune.md's reading)")
    paf: Literal["signed", "abs"] = Field("abs", description="PAF channels in eq. 2: as signed values or |.|")
    part_temperature: float = Field(0.05, gt=0, description="eq. 3 as softmax(r / temperature); 1 = as written")
    part_pool: Literal["sum", "mean"] = Field("sum", description="eq. 5: weighted sum, or avgpool as written")
    bnneck: bool = Field(False, description="BN between the video feature and the classifier (not in the paper)")


class PoseTAPLossParams(Params):
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="0 = the paper's plain K-way softmax CE")
    margin: float = Field(0.3, ge=0, description="m of eq. 10 (the paper gives no value)")
    metric: Literal["euclidean", "cosine"] = "euclidean"
    weight_ce: float = Field(1.0, ge=0)
    weight_rank: float = Field(1.0, ge=0)


class PoseTAP(ReidModule):
    """batch {frames [B, T, 3, H, W], pose_maps [B, T, 57, h0, w0]} -> outputs.

    Outputs: `features` [B, D] (test embedding; D = 4C with alignment, C without), `global` [B, D] (f_video, the
    metric-loss input), `logits` [B, num_classes]; with alignment `spatial_maps` [B, T, 3, h, w] (the masks of
    eq. 3: upper, middle, lower); with TAP `temporal_weights` [B, T, 2] (appearance, parts; [B, T] without
    alignment), whose last axis is named by `group_names`.
    """

    def __init__(self, params: PoseTAPParams, info: DataInfo) -> None:
        super().__init__()
        self.params = params
        self.appearance, c = resnet_trunk(params.depth, params.pretrained, params.weights_path, params.last_stride)
        self.channels = c
        self.parts = (CompositePartMaps(params.paf, params.part_temperature, params.part_pool)
                      if params.align else None)
        if params.pooling == "tap":
            nets = {"appearance": TemporalAttentionNet(c, params.tap_hidden)}
            if params.align:
                nets["parts"] = TemporalAttentionNet(c, params.tap_hidden)
            self.tap = nn.ModuleDict(nets)
            self.group_names: tuple[str, ...] = tuple(nets) if params.align else ()
        else:
            self.tap = None
            self.group_names = ()
        self.dim = c * (1 + len(PART_NAMES)) if params.align else c
        self.classifier: nn.Module = (BNNeck(self.dim, info.num_classes) if params.bnneck
                                      else nn.Linear(self.dim, info.num_classes))

    def _tap_sum(self, desc: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Eq. 7: desc [B, T, D], weights [B, T] -> [B, D]; divided by sum_t w_t with `tap_renormalise`."""
        f = weighted_temporal_sum(desc, weights)
        return f / weights.sum(dim=1, keepdim=True).to(f.dtype) if self.params.tap_renormalise else f

    def _pose_maps(self, batch: dict[str, torch.Tensor], b: int, t: int) -> torch.Tensor:
        maps = batch.get("pose_maps")
        if maps is None:
            raise ReidError("posetap with model.align=true needs batch['pose_maps'] [B, T, 57, h, w]; the dataset "
                            "must provide keypoints (record.keypoints) so the pipeline can render them")
        if maps.dim() != 5 or tuple(maps.shape[:3]) != (b, t, NUM_POSE_CHANNELS):
            raise ReidError(f"pose_maps must be [B={b}, T={t}, {NUM_POSE_CHANNELS}, h, w] (OpenPose layout), "
                            f"got {list(maps.shape)}")
        return maps.flatten(0, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        frames = batch["frames"]
        b, t = frames.shape[:2]
        fa = per_frame(self.appearance, frames)                      # eq. 1: [B, T, C, h, w]
        h, w = fa.shape[-2:]
        fa_flat = fa.flatten(0, 1)                                   # [BT, C, h, w]
        frame_desc = [fa_flat.mean(dim=(2, 3))]                      # eq. 5, appearance block: [BT, C]
        out: dict[str, torch.Tensor] = {}
        masks = None
        if self.parts is not None:
            masks = self.parts(self._pose_maps(batch, b, t), (h, w))      # eqs. 2-3: [BT, 3, h, w]
            pooled = self.parts.pool(fa_flat, masks)                      # eqs. 4-5: [BT, 3, C]
            frame_desc += list(pooled.unbind(dim=1))
            out["spatial_maps"] = masks.unflatten(0, (b, t))
        desc = torch.cat(frame_desc, dim=1).unflatten(0, (b, t))     # eq. 6: [B, T, D]
        if self.tap is None:
            f_video = desc.mean(dim=1)
        else:
            w_app = self.tap["appearance"](fa)                           # eqs. 8-9: [B, T]
            if masks is None:
                f_video = self._tap_sum(desc, w_app)
                out["temporal_weights"] = w_app
            else:
                # TAP on the upper-part masked maps f_{a,u} (eq. 4); its weights serve all three part blocks
                scale = h * w if self.parts.part_pool == "sum" else 1.0
                upper = (fa_flat * masks[:, :1].to(fa_flat.dtype) * scale).unflatten(0, (b, t))
                w_part = self.tap["parts"](upper)
                c = self.channels
                f_video = torch.cat([self._tap_sum(desc[..., :c], w_app),
                                     self._tap_sum(desc[..., c:], w_part)], dim=1)   # eq. 7
                out["temporal_weights"] = torch.stack([w_app, w_part], dim=2)
        if isinstance(self.classifier, BNNeck):
            features, logits = self.classifier(f_video)
        else:
            features, logits = f_video, self.classifier(f_video)
        out.update({"features": features, "global": f_video, "logits": logits})
        return out

    def load_pretrained(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """Initialise from another run's weights (e.g. synthetic pre-training, table 1(a)); returns skipped keys.

        The classifier is skipped when its shape differs (another class count). Tensors of modules this variant
        lacks, or that the source lacks (e.g. TAP when the source used average pooling), are skipped and logged;
        an appearance trunk that does not match (another depth) is an error.
        """
        state = {k.removeprefix("module."): v for k, v in state_dict.items()}
        own = self.state_dict()
        bad = [k for k in set(own) ^ set(state) if k.startswith("appearance.")]
        bad += [k for k in own if k.startswith("appearance.") and k in state and own[k].shape != state[k].shape]
        if bad:
            raise ReidError(f"the pre-trained weights do not fit this appearance network (ResNet-{self.params.depth}"
                            f"): e.g. {sorted(bad)[:3]}; was the source trained with another model.depth?")
        skipped = sorted(k for k, v in state.items() if k not in own or own[k].shape != v.shape)
        self.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
        untouched = sorted(set(own) - set(state))
        if skipped or untouched:
            log.info("posetap init: skipped %s; kept fresh %s", skipped, untouched)
        return skipped


class PoseTAPObjective(Objective):
    """CE on the logits + the batch-hard margin ranking loss of eq. 10 on f_video.

    Eq. 10, L = max(0, -y (d_an - d_ap) + m) with y = 1 (d_an should exceed d_ap), is the hinge of the batch-hard
    triplet loss of Hermans et al. [7] with the hardest positive and negative of each anchor mined in the batch.
    """

    def __init__(self, params: PoseTAPLossParams) -> None:
        super().__init__({"ce": params.weight_ce, "rank": params.weight_rank})
        self.p = params

    def terms(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            "ce": cross_entropy_label_smooth(outputs["logits"], batch["pid"], self.p.label_smoothing),
            "rank": batch_hard_triplet(outputs["global"], batch["pid"], self.p.margin, self.p.metric),
        }


# Eqs. 2-5 exactly as printed: signed PAF values in the eq. 2 mean, eq. 3's softmax at temperature 1, eq. 5's
# avgpool. The recipes' default form (|PAF|, temperature 0.05, weighted sum) is measured against it in
# docs/methods/posetap.md; the `*_as_written` variants let every ablation row run either form.
AS_WRITTEN: dict[str, object] = {"model.paf": "signed", "model.part_temperature": 1.0, "model.part_pool": "mean"}

VARIANTS: dict[str, dict[str, object]] = {
    "baseline": {"model.align": False, "model.pooling": "avg"},
    "alignnet_avg": {"model.align": True, "model.pooling": "avg"},
    "alignnet_tap": {"model.align": True, "model.pooling": "tap"},
    "alignnet_avg_as_written": {"model.align": True, "model.pooling": "avg", **AS_WRITTEN},
    "alignnet_tap_as_written": {"model.align": True, "model.pooling": "tap", **AS_WRITTEN},
    # a probe of docs/tune.md's reading (not the paper's): TAP's weights without the scale of their sum
    "alignnet_tap_renormalised": {"model.align": True, "model.pooling": "tap", "model.tap_renormalise": True},
}

def _objective(params: PoseTAPLossParams, info: DataInfo) -> PoseTAPObjective:
    return PoseTAPObjective(params)


@register_method(
    objective=_objective,
    classifier="classifier",
    model_params=PoseTAPParams,
    loss_params=PoseTAPLossParams,
    inputs=frozenset({"frames", "pose_maps"}),
    variants=VARIANTS,
    default_config="posetap",
    description="pose-guided part alignment + temporal attention pooling (Jones & Rambhatla, BMVC 2019); "
                "CE + batch-hard margin ranking",
)
def posetap(params: PoseTAPParams, info: DataInfo) -> PoseTAP:
    return PoseTAP(params, info)
