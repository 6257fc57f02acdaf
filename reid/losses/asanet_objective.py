"""The ASA-Net objective, eq. 19: L = L_xent + L_wrt + lambda_cent L_cent + lambda_BCE L_BCE + lambda_PMI L_PMI.

- L_xent: label-smoothed cross entropy on the BNNeck logits (eqs. 16-17);
- L_wrt: weighted regularised triplet on f_final (eq. 14);
- L_cent: center loss on f_final (eq. 15), centers owned by this objective and trained by their own SGD (lr 0.5);
- L_BCE: binary cross entropy over the one-vs-rest attribute units of both attribute branches (eq. 18: p_re and
  p_ir merged), averaged over the labelled units (missing labels, -1, are masked out);
- L_PMI: the PMI triplet loss (eqs. 11-13), with lambda_PMI = 0.005 raised to 0.01 once the BCE of the
  ID-irrelevant prediction p_ir (pose and motion units only) falls below 0.15: the paper's text reads "when L_BCE is
  smaller than 0.15 which means the prediction of pose and motion is accurate enough", so the switch reads the
  pose / motion BCE (the `bce_ir` term, logged, weight 0), not the combined L_BCE of eq. 18. The switch is latched in
  the buffer `pmi_raised`, so it is saved in checkpoints and survives a resume.

Loss weights: the paper's text sets lambda_cent = 1.5 and lambda_BCE = 0.0005 (sec. IV-B); the parameter defaults
and the packaged recipe follow it. The swapped order (0.0005 / 1.5) is the recipe `asanet-lambda-swapped`;
docs/methods/asanet.md records the measurement that compared them.

Every weight is a `loss.*` key. The center term's gradient is split the way Wen et al. update centers: features get
lambda_cent * dL/df, the centers get the unweighted dL/dc (their SGD learning rate is the only step size), so a small
lambda_cent does not freeze the centers.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from reid.attribute_schema import AttributeGroup
from reid.errors import ReidError
from reid.losses.attributes import group_targets_tensor, masked_bce_with_logits
from reid.losses.center import CenterLoss
from reid.losses.objective import Objective
from reid.losses.pmi import pmi_triplet_loss
from reid.losses.softmax import cross_entropy_label_smooth
from reid.losses.wrt import weighted_regularized_triplet
from reid.spec import DataInfo, Params


class ASANetLossParams(Params):
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="epsilon of eq. 17")
    wrt_metric: Literal["euclidean", "cosine"] = "euclidean"
    weight_ce: float = Field(1.0, ge=0)
    weight_wrt: float = Field(1.0, ge=0)
    lambda_cent: float = Field(1.5, ge=0, description="center loss weight (paper text: 1.5)")
    lambda_bce: float = Field(0.0005, ge=0, description="attribute BCE weight (paper text: 0.0005)")
    lambda_pmi: float = Field(0.005, ge=0, description="PMI weight before the pose / motion BCE falls below threshold")
    lambda_pmi_raised: float = Field(0.01, ge=0, description="PMI weight once the ID-irrelevant BCE < threshold")
    pmi_bce_threshold: float = Field(0.15, ge=0, description="threshold on the ID-irrelevant (pose / motion) BCE")
    center_lr: float | None = Field(0.5, gt=0, description="own SGD lr of the centers; None = model optimiser")
    center_squared: bool = Field(False, description="eq. 15 as written (false) or Wen et al.'s squared distance")
    center_max_dim: int = Field(2048, ge=1, description="center width when the model's feature width is not known "
                                "(an objective built without a model); must cover it")


def attribute_groups(info: DataInfo) -> list[AttributeGroup]:
    """Order of the attribute units in the model's `attr_logits`: ID-relevant groups, then ID-irrelevant ones."""
    schema = info.attributes
    return schema.by_kind("relevant") + schema.by_kind("irrelevant")


class ASANetObjective(Objective):
    def __init__(self, params: ASANetLossParams, info: DataInfo) -> None:
        super().__init__({"ce": params.weight_ce, "wrt": params.weight_wrt, "center": params.lambda_cent,
                          "bce": params.lambda_bce, "pmi": params.lambda_pmi, "bce_ir": 0.0})
        self.p = params
        self.schema = info.attributes
        self.groups = attribute_groups(info)
        # the last `ir_units` columns of attr_logits / targets are the ID-irrelevant (pose, motion) ones
        self.ir_units = sum(g.width for g in info.attributes.by_kind("irrelevant"))
        if params.lambda_bce > 0 and not self.groups:
            raise ReidError("asanet: loss.lambda_bce > 0 needs attribute labels, but the dataset has no attribute "
                            "groups; prepare it with its attribute CSV (`reid prepare mars|duke --attributes ...`) "
                            "or train without attribute supervision (loss.lambda_bce=0, model.attribute_heads=false)")
        self.center = (CenterLoss(info.num_classes, info.feature_dim or params.center_max_dim, params.center_squared)
                       if params.lambda_cent > 0 else None)
        self.own_lr = params.center_lr if self.center is not None else None
        self.register_buffer("pmi_raised", torch.zeros((), dtype=torch.bool))

    @property
    def uses_pmi(self) -> bool:
        return self.p.lambda_pmi > 0 or self.p.lambda_pmi_raised > 0

    def lambda_pmi(self) -> torch.Tensor:
        """Current lambda_PMI (a 0-d tensor, so reading it does not synchronise the GPU)."""
        return torch.where(self.pmi_raised, self.p.lambda_pmi_raised, self.p.lambda_pmi).float()

    def attribute_targets(self, attributes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """attributes int64 [B, num_columns] -> one-vs-rest targets and mask [B, D_attr] in `attr_logits` order."""
        pairs = [group_targets_tensor(attributes, g, self.schema) for g in self.groups]
        return torch.cat([t for t, _ in pairs], dim=1), torch.cat([m for _, m in pairs], dim=1)

    def _bce(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_BCE of eq. 18 over all units, the BCE of the ID-irrelevant units alone), both masked means."""
        if "attr_logits" not in outputs:
            raise ReidError("asanet: loss.lambda_bce > 0 but the model has no attribute heads "
                            "(model.attribute_heads=false); set loss.lambda_bce=0 or enable the heads")
        if "attributes" not in batch:
            raise ReidError("asanet: the batch carries no 'attributes'; the dataset needs an attribute file")
        targets, mask = self.attribute_targets(batch["attributes"])
        logits = outputs["attr_logits"]
        if logits.shape[1] != targets.shape[1]:
            raise ReidError(f"asanet: the model predicts {logits.shape[1]} attribute units but the dataset's "
                            f"schema has {targets.shape[1]}; build model and objective from the same DataInfo")
        ir = slice(logits.shape[1] - self.ir_units, None)
        return (masked_bce_with_logits(logits, targets, mask),
                masked_bce_with_logits(logits[:, ir], targets[:, ir], mask[:, ir]))

    def _compute(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """(unweighted terms, the centers' share of the center loss or None)."""
        pid, f_final = batch["pid"], outputs["global"]
        terms: dict[str, torch.Tensor] = {}
        center_update = None
        if self.p.weight_ce > 0:
            terms["ce"] = cross_entropy_label_smooth(outputs["logits"], pid, self.p.label_smoothing)
        if self.p.weight_wrt > 0:
            terms["wrt"] = weighted_regularized_triplet(f_final, pid, self.p.wrt_metric)
        if self.center is not None:
            terms["center"] = self.center(f_final, pid, detach_centers=True)
            center_update = self.center(f_final, pid, detach_features=True)
        if self.p.lambda_bce > 0:
            terms["bce"], terms["bce_ir"] = self._bce(outputs, batch)
        if self.uses_pmi:
            terms["pmi"] = pmi_triplet_loss(f_final, outputs["ir_attr"], pid)
        return terms, center_update

    def terms(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._compute(outputs, batch)[0]

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms, center_update = self._compute(outputs, batch)
        if self.training and "bce_ir" in terms and self.ir_units > 0:
            # sec. IV-B: raise lambda_PMI once the pose / motion prediction is accurate enough
            self.pmi_raised.logical_or_(terms["bce_ir"].detach() < self.p.pmi_bce_threshold)
        lam_pmi = self.lambda_pmi().to(outputs["global"].device)
        total = outputs["global"].new_zeros((), dtype=torch.float32)
        for name, value in terms.items():
            weight = lam_pmi if name == "pmi" else self.weights[name]
            if name != "bce_ir":                                  # bce_ir is monitored only (part of "bce")
                total = total + weight * value
        if center_update is not None:
            # adds 0 to the value; gives the centers the gradient of the unweighted center loss
            total = total + (center_update - center_update.detach())
        return {"loss": total, **terms, "lambda_pmi": lam_pmi}
