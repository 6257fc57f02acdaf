"""Multi-view test-time augmentation: V embeddings per tracklet and a distance summed over the views.

ASTPN's official evaluation (test.lua, `computeCMC_MeanPool_RNN`; Xu et al. ICCV 2017 section 4.1.1: "test data
also underwent the augmentation") embeds every sequence under V = 16 views (crop offset s = 1..8 x flip,
`reid.data.transforms.astpn_official_views`) and accumulates, per view, the Euclidean distance of the probe and
gallery features:

    simMat[i][j] = sum_{v=1..V} || f_v(q_i) - f_v(g_j) ||_2

A sum of distances is not the distance of any single pooled feature (neither of the concatenation, whose distance
is sqrt(sum_v d_v^2), nor of the view average), so the views are kept apart: embeddings [N, V, D] and
`multiview_distance` -> [Nq, Ng]. No Ray here.
"""

from __future__ import annotations

from typing import Literal

import torch

from reid.errors import ReidError
from reid.evaluation.distances import pairwise_distance

TTA_MODES: tuple[str, ...] = ("none", "astpn-official")
Role = Literal["query", "gallery"]


def multiview_distance(q: torch.Tensor, g: torch.Tensor, metric: str = "euclidean", *,
                       normalize: bool = False) -> torch.Tensor:
    """Summed per-view distance: q [Nq, V, D], g [Ng, V, D] -> [Nq, Ng] float32,

        dist[i, j] = sum_v d(q[i, v], g[j, v]),

    d = `metric` of `reid.evaluation.distances.pairwise_distance` ("euclidean" in the official code). With
    `normalize`, each view's feature is L2-normalised before its distance (the astpn recipes keep raw features).
    """
    if q.dim() != 3 or g.dim() != 3 or q.shape[1:] != g.shape[1:]:
        raise ReidError(f"multi-view features must be [Nq, V, D] and [Ng, V, D] with the same V and D, got "
                        f"{tuple(q.shape)} and {tuple(g.shape)}")
    if normalize:
        q, g = torch.nn.functional.normalize(q.float(), dim=2), torch.nn.functional.normalize(g.float(), dim=2)
    out = torch.zeros(q.shape[0], g.shape[0], dtype=torch.float32, device=q.device)
    for v in range(q.shape[1]):
        out += pairwise_distance(q[:, v], g[:, v], metric)  # type: ignore[arg-type]
    return out


def subtract_image_mean(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """test.lua's `u = u - torch.mean(u)` on each cropped image u = [frames; flow] (5 x h x w in ASTPN: YUV + 2
    flow channels): one scalar per image, the mean over all its channels and pixels, subtracted from all of them.

    inputs: normalised `frames` [B, T, 3, h, w] and, if present, `flow` [B, T, 2, h, w]; returns new tensors
    (other keys passed through)."""
    parts = [inputs["frames"]] + ([inputs["flow"]] if "flow" in inputs else [])
    total = sum(p.sum(dim=(-3, -2, -1)) for p in parts)  # [B, T]
    count = sum(p.shape[-3] * p.shape[-2] * p.shape[-1] for p in parts)
    mean = (total / count)[..., None, None, None]
    out = dict(inputs)
    out["frames"] = inputs["frames"] - mean
    if "flow" in inputs:
        out["flow"] = inputs["flow"] - mean
    return out


def role_frames(n: int, length: int, role: Role) -> list[int]:
    """Frames of a tracklet of n frames that test.lua embeds: a probe (camera 1) its first min(n, length) frames,
    a gallery sequence (camera 2) its last min(n, length) (`seqOffset = seqLen - sampleSeqLength + 1`); shorter
    tracklets are used whole, without padding (`actualSampleLen = seqLen`)."""
    if n < 1 or length < 1:
        raise ReidError(f"role_frames needs n >= 1 and length >= 1, got n={n}, length={length}")
    if role not in ("query", "gallery"):
        raise ReidError(f"unknown role '{role}'; expected 'query' or 'gallery'")
    k = min(n, length)
    return list(range(k)) if role == "query" else list(range(n - k, n))
