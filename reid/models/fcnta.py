"""FCNTA: fully convolutional temporal attention over RCN frame features (Rahman, Rochan, Wang, ICME 2019).

Per frame z_i = RCN CNN(YUV + flow) in R^128 (section 3.1). The attention module (section 3.2, fig. 3) is a 1-D
FCN-32s over the N x 128 sequence: alpha = FCN(z_1..z_N) (eq. 1a), lambda_i = sigmoid(alpha_i) (eq. 1b; softmax as
an option, which the paper reports worse), gamma = sum_i lambda_i z_i (eq. 2, not renormalised), and the final
video feature F = (gamma + mean_i z_i) / 2, L2-normalised. Trained siamese: squared hinge (m = 2) on the distance of
the normalised features + a softmax ID loss per branch (eq. 4).
Two probes outside the paper separate the sigmoid's selection of frames from its scale (sum_i lambda_i up to N):
`renormalise` (gamma / sum_i lambda_i) keeps the selection without the scale, `pooling: sum` (lambda_i = 1) keeps a
scale without any selection.

FCN depth and windows (the paper shows them only as w1, w2 in fig. 3; decision for N = 16):
  encoder ("conv1..conv5" of FCN-32s): 2 stages of [Conv1d(window w1 = 3, "same" padding), ReLU, max-pool 2]
      with 128 channels each: 16 -> 8 -> 4 time steps (x4 down-sampling; a 5-stage x32 encoder, as FCN-32s has on
      images, would shrink 16 frames below one step);
  fc6: Conv1d(window w2 = 3) -> 256, ReLU, dropout 0.5;  fc7: Conv1d(1) -> 256, ReLU, dropout 0.5;
  score: Conv1d(1) -> 1 logit per (down-sampled) step;
  upscore: ConvTranspose1d(kernel 2s, stride s, padding s/2) with s = 4, initialised to linear interpolation and
      learned; its output (length 4 * ceil(N / 4)) is cropped to N.
Sequences whose length is not a multiple of s are padded at the end by repeating the last frame, then cropped.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from reid.losses.siamese import HingeKind, SiameseLossParams, SiameseObjective
from reid.models.layers.module import ReidModule
from reid.models.layers.rcn import RCNFrameCNN, rcn_input
from reid.registration import register_method
from reid.spec import DataInfo, Params


class FcntaParams(Params):
    use_flow: bool = Field(True, description="5-channel input (YUV + 2 flow); false: the 3 colour channels only")
    filters: list[int] = Field(default_factory=lambda: [16, 32, 32], min_length=1)
    embed_dim: int = Field(128, ge=1)
    dropout: float = Field(0.6, ge=0, lt=1, description="after the frame CNN's FC (official RCN code: 0.6)")
    pooling: Literal["attention", "mean", "sum"] = Field(
        "attention", description="attention: eqs. 1-2; mean: F = mean z; sum: lambda_i = 1, gamma = sum z (not in "
        "the paper: the sigmoid's scale without its selection, a probe of docs/tune.md's reading)")
    attention: Literal["sigmoid", "softmax"] = "sigmoid"
    renormalise: bool = Field(False, description="gamma / sum_i lambda_i, a weighted mean (not in the paper: the "
                              "sigmoid's selection without its scale, a probe of docs/tune.md's reading)")
    combine_mean: bool = Field(True, description="F = (gamma + mean z) / 2 as in the paper; false: F = gamma")
    fcn_channels: list[int] = Field(default_factory=lambda: [128, 128], description="one down-sampling stage each")
    fcn_window: int = Field(3, ge=1, description="w1: window of the encoder convolutions (odd)")
    fcn_head_window: int = Field(3, ge=1, description="w2: window of fc6 (odd)")
    fcn_hidden: int = Field(256, ge=1, description="width of fc6 / fc7")
    fcn_dropout: float = Field(0.5, ge=0, lt=1)

    @field_validator("fcn_window", "fcn_head_window")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"FCN windows must be odd so that 'same' padding keeps frames aligned; got {v}")
        return v


class FcntaLossParams(SiameseLossParams):
    hinge: HingeKind = "squared"
    margin: float = Field(2.0, gt=0)


def _linear_upsampling_kernel(stride: int) -> torch.Tensor:
    """1-D bilinear (linear) interpolation kernel of size 2 * stride, as FCN initialises its up-sampling layer."""
    size = 2 * stride
    center = stride - 0.5
    idx = torch.arange(size, dtype=torch.float32)
    return 1.0 - (idx - center).abs() / stride


class FCNTemporalAttention(nn.Module):
    """z: [B, N, D] -> unnormalised attention scores alpha [B, N] (eq. 1a), a 1-D FCN-32s (see module docstring)."""

    def __init__(self, in_dim: int, channels: list[int], window: int = 3, head_window: int = 3,
                 hidden: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_dim
        for width in channels:
            layers += [nn.Conv1d(c, width, window, padding=window // 2), nn.ReLU(inplace=True), nn.MaxPool1d(2)]
            c = width
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv1d(c, hidden, head_window, padding=head_window // 2), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv1d(hidden, hidden, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv1d(hidden, 1, 1),
        )
        self.stride = 2 ** len(channels)
        if self.stride > 1:
            self.upscore: nn.Module = nn.ConvTranspose1d(1, 1, 2 * self.stride, stride=self.stride,
                                                         padding=self.stride // 2, bias=False)
            with torch.no_grad():
                self.upscore.weight.copy_(_linear_upsampling_kernel(self.stride).view(1, 1, -1))
        else:
            self.upscore = nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[1]
        x = z.transpose(1, 2)                                    # [B, D, N]: time is the 1-D "image" axis
        pad = (-n) % self.stride
        if pad:
            x = F.pad(x, (0, pad), mode="replicate")
        score = self.upscore(self.head(self.encoder(x)))         # [B, 1, >= N]
        return score[:, 0, :n]


class FCNTA(ReidModule):
    """batch -> `features` [B, 128] (L2-normalised F), `embedding` (same, for the hinge), `global` (F before
    normalisation), `logits` [B, C] (ID classifier on F), `temporal_weights` [B, T] (lambda; 1/T for mean pooling).
    """

    def __init__(self, params: FcntaParams, info: DataInfo) -> None:
        super().__init__()
        self.p = params
        self.cnn = RCNFrameCNN(5 if params.use_flow else 3, info.height, info.width, tuple(params.filters),
                               spatial="maxpool", embed_dim=params.embed_dim, dropout=params.dropout)
        self.attention = (FCNTemporalAttention(params.embed_dim, params.fcn_channels, params.fcn_window,
                                               params.fcn_head_window, params.fcn_hidden, params.fcn_dropout)
                          if params.pooling == "attention" else None)
        self.classifier = nn.Linear(params.embed_dim, info.num_classes)

    def pool(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z: [B, T, D] -> (F [B, D], lambda [B, T])."""
        if self.p.pooling == "mean":
            return z.mean(dim=1), torch.full(z.shape[:2], 1.0 / z.shape[1], device=z.device, dtype=z.dtype)
        if self.attention is None:                                             # "sum": uniform lambda_i = 1
            lam = torch.ones(z.shape[:2], device=z.device, dtype=z.dtype)
        else:
            alpha = self.attention(z)                                          # eq. 1a
            lam = torch.sigmoid(alpha) if self.p.attention == "sigmoid" else alpha.softmax(dim=1)   # eq. 1b
        gamma = (lam.unsqueeze(-1) * z).sum(dim=1)                             # eq. 2
        if self.p.renormalise:
            gamma = gamma / lam.sum(dim=1, keepdim=True)
        f = 0.5 * (gamma + z.mean(dim=1)) if self.p.combine_mean else gamma
        return f, lam

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = self.cnn(rcn_input(batch, self.p.use_flow))                        # [B, T, D]
        f, lam = self.pool(z)
        emb = F.normalize(f, dim=1)
        return {"features": emb, "embedding": emb, "global": f, "logits": self.classifier(f),
                "temporal_weights": lam}


VARIANTS = {
    "full": {},
    "mean-pooling": {"model.pooling": "mean"},
    "attention-only": {"model.combine_mean": False},
    "softmax": {"model.attention": "softmax"},
    "no-flow": {"model.use_flow": False},
    # probes of docs/tune.md's reading (not the paper's): selection without scale, scale without selection
    "sigmoid-renormalised": {"model.renormalise": True},
    "sum-pooling": {"model.pooling": "sum"},
}

def _objective(params: FcntaLossParams, info: DataInfo) -> SiameseObjective:
    return SiameseObjective(params)


@register_method(
    objective=_objective,
    classifier="classifier",
    model_params=FcntaParams,
    loss_params=FcntaLossParams,
    # "flow" stays declared with model.use_flow=false (the spec is static); the model then ignores it.
    inputs=frozenset({"frames", "flow"}),
    batching="pairs",
    input_norm="yuv",
    variants=VARIANTS,
    default_config="fcnta",
    description="RCN CNN (YUV + flow) + 1-D FCN temporal attention (sigmoid), averaged with mean pooling; "
                "siamese squared hinge (m=2) + ID loss per branch",
)
def fcnta(params: FcntaParams, info: DataInfo) -> FCNTA:
    return FCNTA(params, info)
