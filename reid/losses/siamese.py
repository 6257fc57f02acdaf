"""Siamese losses of the recurrent-convolutional re-ID family (McLaughlin et al. 2016; ASTPN; FCN temporal attention).

A "pairs" batch holds 2N sequences: rows 0..N-1 are side A, rows N..2N-1 side B, and `pair_same` [N] says whether
row i and row N+i show the same identity. Both hinge losses are averaged over the N pairs (the papers train with
one pair per step, so the sum and the mean coincide there) and are followed by an identity loss on each branch:

    loss = w_hinge * hinge + w_id * (CE(side A) + CE(side B))            (ASTPN section 3.3, FCNTA eq. 4)

`loss.hinge`: "sq_distance" (ASTPN eq. 6 as printed), "squared" (FCNTA / McLaughlin's squared hinge), "distance"
(what the official Torch code runs: HingeEmbeddingCriterion on the plain distance).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from reid.errors import ReidError
from reid.losses.objective import Objective
from reid.spec import Params

HingeKind = Literal["squared", "sq_distance", "distance"]


def margin_hinge_sq_distance(v_a: torch.Tensor, v_b: torch.Tensor, same: torch.Tensor,
                             margin: float = 3.0) -> torch.Tensor:
    """ASTPN eq. 6 on squared Euclidean distance, mean over pairs.

    E = ||v_a - v_b||^2 if same, max(0, m - ||v_a - v_b||^2) otherwise. v_a, v_b: [N, D]; same: [N] (1 = same id).
    """
    d2 = (v_a.float() - v_b.float()).pow(2).sum(dim=1)
    same = same.to(d2.dtype)
    return (same * d2 + (1.0 - same) * F.relu(margin - d2)).mean()


def distance_hinge(v_a: torch.Tensor, v_b: torch.Tensor, same: torch.Tensor, margin: float = 3.0) -> torch.Tensor:
    """Hinge on the plain Euclidean distance, mean over pairs: d if same, max(0, m - d) otherwise.

    What the official RCN / ASTPN Torch code computes (`HingeEmbeddingCriterion` on `PairwiseDistance(2)`), as
    opposed to the squared distance that ASTPN's eq. 6 prints. Its same-id gradient has unit norm whatever d is.
    """
    d = (v_a.float() - v_b.float()).pow(2).sum(dim=1).clamp_min(1e-12).sqrt()
    same = same.to(d.dtype)
    return (same * d + (1.0 - same) * F.relu(margin - d)).mean()


def squared_hinge(v_a: torch.Tensor, v_b: torch.Tensor, same: torch.Tensor, margin: float = 2.0) -> torch.Tensor:
    """FCNTA eq. 3 (squared hinge on Euclidean distance, following McLaughlin et al.), mean over pairs.

    d = ||v_a - v_b||; E = d^2 if same, max(0, m - d)^2 otherwise. v_a, v_b: [N, D]; same: [N].
    """
    diff = v_a.float() - v_b.float()
    # d^2 is computed directly (not as d**2) so that the same-id branch has a gradient at d = 0.
    d2 = diff.pow(2).sum(dim=1)
    d = d2.clamp_min(1e-12).sqrt()
    same = same.to(d2.dtype)
    return (same * d2 + (1.0 - same) * F.relu(margin - d).pow(2)).mean()


HINGES = {"squared": squared_hinge, "sq_distance": margin_hinge_sq_distance, "distance": distance_hinge}


def split_pairs(x: torch.Tensor, pair_same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: [2N, ...] -> (side A [N, ...], side B [N, ...]), checking the batch against `pair_same` [N]."""
    n = pair_same.shape[0]
    if pair_same.dim() != 1 or x.shape[0] != 2 * n:
        raise ReidError(f"a pairs batch must hold 2N rows for pair_same of shape [N]; got {x.shape[0]} rows and "
                        f"pair_same of shape {tuple(pair_same.shape)} (set the method's batching to 'pairs')")
    return x[:n], x[n:]


class SiameseLossParams(Params):
    """`loss.*` of the siamese methods: the hinge of eq. 6 (ASTPN) / eq. 3 (FCNTA) plus an ID loss per branch."""

    hinge: HingeKind = "sq_distance"
    margin: float = Field(3.0, gt=0)
    weight_hinge: float = Field(1.0, ge=0)
    weight_id: float = Field(1.0, ge=0, description="weight of each branch's identity cross entropy")


class SiameseObjective(Objective):
    """Consumes `embedding` [2N, D] (the vector the hinge compares) and `logits` [2N, C] of a pairs batch.

    Terms: `hinge`, `id_a`, `id_b` (cross entropy of each side's identity classifier).
    """

    def __init__(self, params: SiameseLossParams) -> None:
        super().__init__({"hinge": params.weight_hinge, "id_a": params.weight_id, "id_b": params.weight_id})
        self.p = params
        self.hinge = HINGES[params.hinge]

    def terms(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "pair_same" not in batch:
            raise ReidError("the siamese objective needs a pairs batch with 'pair_same' [N]; "
                            "got keys " + ", ".join(sorted(batch)))
        same = batch["pair_same"]
        emb_a, emb_b = split_pairs(outputs["embedding"], same)
        logit_a, logit_b = split_pairs(outputs["logits"], same)
        pid_a, pid_b = split_pairs(batch["pid"], same)
        return {
            "hinge": self.hinge(emb_a, emb_b, same, self.p.margin),
            "id_a": F.cross_entropy(logit_a.float(), pid_a),
            "id_b": F.cross_entropy(logit_b.float(), pid_b),
        }
