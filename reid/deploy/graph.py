"""The exported graph: uint8 frames of one tracklet -> its embedding, with the preprocessing inside.

    frames uint8 [C, L, H0, W0, 3] (C clips of L frames, RGB, any frame size)
      -> bilinear resize to the model's (H, W)                       (as `reid.data.transforms.resize_clip`)
      -> the method's input normalisation (ImageNet mean/std or standardised YUV; `reid.data.transforms`)
      -> the model's per-clip feature [C, D] (its own temporal pooling inside the clip)
      -> mean over the C clips (`reid.evaluation.run.extract.record_feature`)
      -> L2 normalisation when the run evaluates with `eval.normalize`                    -> [D]

Extra per-frame inputs of some methods (`flow` [C, L, 2, H, W] for fcnta/astpn, `pose_maps` [C, L, 57, H/8, W/8]
for posetap) are not computed in the graph (Lucas-Kanade flow and pose rendering are numpy/OpenCV code): they are
further graph inputs at the sizes the data pipeline gives the model. Pose maps are resized in the graph to the
feature-map size by `reid.deploy.onnx_ops.FixedResize` (the model's antialiased resize as a fixed linear map). For the siamese methods (fcnta, astpn) the graph is the per-sequence part; the pairwise part
(`pair_distance`, query-dependent attention) is not exported (docs/deploy.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid.config.schema import ExperimentConfig
from reid.data.transforms import normalize_input
from reid.registry import MethodSpec


class ExportGraph(nn.Module):
    """frames uint8 [C, L, H0, W0, 3] (+ extras) -> embedding [D] (see the module docstring).

    `double_normalize` applies the input normalisation twice: the fast-reid ONNX bug (issue 177), kept only so the
    export test can show that its tolerance rejects such a graph.
    """

    def __init__(self, model: nn.Module, input_norm: str, size: tuple[int, int], l2: bool,
                 extras: tuple[str, ...] = (), double_normalize: bool = False,
                 resizers: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.model, self.input_norm, self.size, self.l2 = model, input_norm, tuple(size), l2
        self.extras, self.double_normalize = tuple(extras), double_normalize
        self.resizers = nn.ModuleDict(resizers or {})  # extra input name -> its resize (before the model)

    def forward(self, frames: torch.Tensor, *extras: torch.Tensor) -> torch.Tensor:
        c, length = frames.shape[0], frames.shape[1]
        x = frames.permute(0, 1, 4, 2, 3).flatten(0, 1).float()           # [C*L, 3, H0, W0]
        # same size -> bilinear with align_corners=False is the identity, so pre-resized input passes unchanged
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        x = x.clamp(0.0, 255.0).reshape(c, length, 3, self.size[0], self.size[1])
        x = normalize_input(x, self.input_norm)
        if self.double_normalize:
            x = normalize_input(x, self.input_norm)
        batch = {"frames": x}
        for name, value in zip(self.extras, extras, strict=True):
            batch[name] = self.resizers[name](value) if name in self.resizers else value.float()
        feats = self.model(batch)["features"].float()                     # [C, D]
        out = feats.mean(dim=0)                                           # mean over clips -> [D]
        return F.normalize(out, dim=0) if self.l2 else out


def dummy_inputs(cfg: ExperimentConfig, spec: MethodSpec, clips: int = 2, length: int | None = None
                 ) -> tuple[torch.Tensor, ...]:
    """Random inputs of the graph's shapes: frames uint8 [C, L, H, W, 3] and the method's extras (at the sizes the
    data pipeline gives them: `reid.data.batching`)."""
    from reid.data.batching import POSE_STRIDE
    from reid.data.pose_maps import NUM_CHANNELS
    from reid.deploy.runs import extra_inputs

    g = torch.Generator().manual_seed(0)
    h, w = cfg.data.height, cfg.data.width
    t = length or cfg.data.seq_len
    out = [torch.randint(0, 256, (clips, t, h, w, 3), generator=g, dtype=torch.uint8)]
    shapes = {"flow": (clips, t, 2, h, w), "pose_maps": (clips, t, NUM_CHANNELS, h // POSE_STRIDE, w // POSE_STRIDE),
              "keypoints": (clips, t, 18, 3)}
    for name in extra_inputs(spec):
        out.append(torch.rand(shapes[name], generator=g))
    return tuple(out)
