"""The attribute-transfer model of adfta (Zhao et al., CVPR 2019, section 3.2, fig. 3).

An image model learns the binary attributes of a labelled SOURCE attribute set (RAP in the paper) while an MMD term
(eqs. 5-6) pulls the distribution of its attribute features on unlabelled TARGET re-ID frames towards the source
one. It then labels the target tracklets: per-frame sigmoid scores averaged over the frames of each IDENTITY (eq. 9: "for
each identity ... x_t is the t-th frame of this person"; `merge_and_threshold` with `groups` = person ids; per
tracklet is an option), thresholded at 0.5 (eq. 10). Table 2's four rows are the `variant`s: bce, bce_mmd, wbce
(eq. 8), wbce_mmd.

The MMD of eqs. 5-6 runs on the attribute features F as the paper writes it (`mmd_normalize=False`, the default).
Option: L2-normalise F first (`mmd_normalize=True`). Why the option exists: with alpha = 0.5 the kernel
exp(-||a - b||^2 / 0.5) of two unrelated raw features is ~0 (squared distances of BN + ReLU features grow with
their width), so the MMD is close to its constant 1/n_s + 1/n_t and has almost no gradient; on unit-norm features
d^2 <= 4 and the kernel is informative. docs/methods/adfta.md records a measurement.

Architecture (fig. 3): ResNet trunk -> global average pool -> attribute feature layer F (FC + BN + ReLU; the MMD
is measured here) -> prediction layer (FC, sigmoid). This is an image model trained by a plain in-process loop,
not by the distributed video spine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reid.errors import ReidError
from reid.losses.transfer import mmd_loss, weighted_bce_with_logits
from reid.models.backbones import resnet_trunk
from reid.progress import bar as progress_bar

Variant = Literal["bce", "bce_mmd", "wbce", "wbce_mmd"]
# table 2 of the paper: (weighted BCE of eq. 8 instead of eq. 7, MMD of eq. 5 added)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "bce": (False, False), "bce_mmd": (False, True), "wbce": (True, False), "wbce_mmd": (True, True),
}


@dataclass(frozen=True)
class TransferSettings:
    """Hyper-parameters of the transfer model. The paper gives only alpha = 0.5 and th = 0.5; the rest are
    decisions: SGD (momentum 0.9, weight decay 5e-4), lr x0.1 after 70% of the epochs, MMD weight 1, WBCE sigma 1
    (the DeepMAR weighting that eq. 8 follows). The MMD runs on the raw attribute features, as eqs. 5-6 write it;
    `mmd_normalize=True` L2-normalises them first (an option, see the module docstring)."""

    variant: Variant = "wbce_mmd"
    depth: Literal[18, 34, 50] = 18
    pretrained: bool = True
    weights_path: str | None = None
    feature_dim: int = 512
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    wbce_sigma: float = 1.0
    mmd_alpha: float = 0.5
    mmd_weight: float = 1.0
    # False = eqs. 5-6 as written. True: exp(-d^2 / (2 * 0.5^2)) nearly vanishes for the distances between raw
    # high-dimensional features (almost no gradient); on unit-norm features d^2 <= 4, where alpha = 0.5 is meaningful
    mmd_normalize: bool = False
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ReidError(f"transfer variant '{self.variant}' unknown; expected one of {', '.join(VARIANTS)}")
        if self.epochs < 1 or self.lr <= 0 or self.mmd_alpha <= 0 or self.wbce_sigma <= 0:
            raise ReidError("transfer settings: epochs >= 1 and lr, mmd_alpha, wbce_sigma > 0 are required")
        if not 0.0 < self.threshold < 1.0:
            raise ReidError(f"threshold {self.threshold} must lie in (0, 1)")

    @property
    def weighted(self) -> bool:
        return VARIANTS[self.variant][0]

    @property
    def uses_mmd(self) -> bool:
        return VARIANTS[self.variant][1]


class AttributeTransferNet(nn.Module):
    """images [N, 3, H, W] (ImageNet-normalised) -> (attribute features F [N, feature_dim], logits [N, L])."""

    def __init__(self, num_attributes: int, settings: TransferSettings) -> None:
        super().__init__()
        self.backbone, channels = resnet_trunk(settings.depth, settings.pretrained, settings.weights_path,
                                               last_stride=2)
        self.feature = nn.Sequential(nn.Linear(channels, settings.feature_dim),
                                     nn.BatchNorm1d(settings.feature_dim), nn.ReLU(inplace=True))
        self.predict = nn.Linear(settings.feature_dim, num_attributes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.feature(self.backbone(images).mean(dim=(2, 3)))
        return feats, self.predict(feats)


def transfer_terms(net: AttributeTransferNet, source: torch.Tensor, labels: torch.Tensor,
                   target: torch.Tensor | None, pos_ratio: torch.Tensor, settings: TransferSettings
                   ) -> dict[str, torch.Tensor]:
    """One step's loss terms. source [Ns, 3, H, W], labels {0,1} [Ns, L], target [Nt, 3, H, W] or None.

    Source and target go through the network as ONE batch so that BatchNorm sees both domains together.
    """
    ns = source.shape[0]
    images = source if target is None else torch.cat([source, target])
    feats, logits = net(images)
    attr = weighted_bce_with_logits(logits[:ns], labels, pos_ratio if settings.weighted else None,
                                    settings.wbce_sigma)
    terms = {"attr": attr}
    if settings.uses_mmd and target is not None:
        f = F.normalize(feats, dim=1) if settings.mmd_normalize else feats
        terms["mmd"] = mmd_loss(f[:ns], f[ns:], settings.mmd_alpha)
    terms["loss"] = attr + settings.mmd_weight * terms.get("mmd", attr.new_zeros(()))
    return terms


def _cycle(loader: Iterable) -> Iterator:
    while True:
        yield from loader


def train_transfer(net: AttributeTransferNet, source_loader: Iterable, target_loader: Iterable | None,
                   pos_ratio: torch.Tensor, settings: TransferSettings, device: torch.device,
                   val_loader: Iterable | None = None, log: Callable[[str], None] | None = None
                   ) -> list[dict[str, float]]:
    """Train for `settings.epochs` passes over the source loader; one target batch per source batch (cycled).

    source_loader yields (images [B, 3, H, W], labels [B, L]); target_loader yields images [Bt, 3, H, W].
    Returns one dict per epoch: mean `loss`, `attr`, `mmd` and, with val_loader, source `val_acc`; `log` gets a
    one-line summary per epoch.
    """
    if settings.uses_mmd and target_loader is None:
        raise ReidError(f"variant {settings.variant} needs target frames for the MMD term")
    net.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, round(0.7 * settings.epochs)), gamma=0.1)
    targets = _cycle(target_loader) if settings.uses_mmd else None
    pos_ratio = pos_ratio.to(device)
    history = []
    for epoch in range(settings.epochs):
        net.train()
        sums: dict[str, float] = {}
        steps = 0
        bar = progress_bar(source_loader, desc=f"transfer {settings.variant} epoch {epoch + 1}/{settings.epochs}",
                           unit="batches", leave=False)
        for images, labels in bar:
            tgt = next(targets).to(device, non_blocking=True) if targets is not None else None
            terms = transfer_terms(net, images.to(device, non_blocking=True), labels.to(device), tgt,
                                   pos_ratio, settings)
            if not torch.isfinite(terms["loss"]):
                raise ReidError(f"transfer loss is not finite at epoch {epoch + 1}: "
                                f"{ {k: float(v) for k, v in terms.items()} }")
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            steps += 1
            bar.set_postfix(loss=f"{sums['loss'] / steps:.4f}", refresh=False)
        sched.step()
        if steps == 0:
            raise ReidError("the source loader produced no batch (fewer source images than one batch?)")
        record = {k: v / steps for k, v in sums.items()}
        if val_loader is not None:
            record["val_acc"] = float(source_accuracy(net, val_loader, device, settings.threshold).mean())
        history.append(record)
        if log is not None:
            log(f"[transfer] epoch {epoch + 1:3d}/{settings.epochs} " + "  ".join(
                f"{k} {v:.4f}" for k, v in record.items()))
    return history


@torch.no_grad()
def source_accuracy(net: AttributeTransferNet, loader: Iterable, device: torch.device, threshold: float = 0.5
                    ) -> np.ndarray:
    """Per-attribute accuracy [L] on labelled images (source validation)."""
    net.eval()
    correct, count = None, 0
    for images, labels in loader:
        pred = torch.sigmoid(net(images.to(device))[1]).cpu() >= threshold
        hits = (pred == labels.bool()).sum(0).double()
        correct = hits if correct is None else correct + hits
        count += labels.shape[0]
    if correct is None:
        raise ReidError("no labelled image to measure accuracy on")
    return (correct / count).numpy()


@torch.no_grad()
def predict_tracklets(net: AttributeTransferNet, clips: Iterable[tuple[int, torch.Tensor]], device: torch.device,
                      num_tracklets: int, num_attributes: int, batch_frames: int = 64
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Sum of per-frame sigmoid scores and frame counts per tracklet (the parts of eq. 9).

    clips yields (tracklet index, frames [k, 3, H, W]). Returns (score sums float64 [num_tracklets, L],
    frame counts int64 [num_tracklets]); eq. 9's mean is sums / counts, over a tracklet or an identity.
    """
    net.eval().to(device)
    sums = np.zeros((num_tracklets, num_attributes), dtype=np.float64)
    counts = np.zeros(num_tracklets, dtype=np.int64)
    for index, frames in clips:
        for chunk in torch.split(frames, batch_frames):
            probs = torch.sigmoid(net(chunk.to(device))[1]).double().cpu().numpy()
            sums[index] += probs.sum(0)
            counts[index] += probs.shape[0]
    return sums, counts


def merge_and_threshold(sums: np.ndarray, counts: np.ndarray, groups: np.ndarray | None = None,
                        threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Eqs. 9-10: a_i = mean of the frame scores, L_i = [a_i >= th].

    sums [N, L], counts [N]; groups int [N] (e.g. identities) pools the frames of every tracklet of a group
    (entries < 0 are pooled alone). Returns (scores float [N, L], labels int [N, L]); a row without any decoded
    frame gets scores NaN and labels -1 (missing).
    """
    if groups is not None:
        pooled_sums, pooled_counts = sums.copy(), counts.copy()
        for g in np.unique(groups[groups >= 0]):
            rows = groups == g
            pooled_sums[rows] = sums[rows].sum(0)
            pooled_counts[rows] = counts[rows].sum()
        sums, counts = pooled_sums, pooled_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = sums / counts[:, None]
    labels = (scores >= threshold).astype(np.int64)
    labels[counts <= 0] = -1
    return np.where(counts[:, None] > 0, scores, np.nan), labels
