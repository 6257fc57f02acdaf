"""Pure-torch helpers that turn per-chunk embeddings into one embedding per tracklet.

The Ray Data batch-inference driver (written in the pipeline layer) runs the model over (tracklet, chunk) rows and
calls these on the gathered outputs; nothing here knows about Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from reid.errors import ReidError


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """x / ||x|| along `dim` (a zero vector stays zero)."""
    return x / x.norm(dim=dim, keepdim=True).clamp(min=eps)


def flip_average(features: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """Test-time flip augmentation: mean of the embeddings of the clip and of its horizontal mirror. [N, D] x 2."""
    if features.shape != flipped.shape:
        raise ReidError(f"flip averaging needs equal shapes, got {tuple(features.shape)} and {tuple(flipped.shape)}")
    return (features + flipped) / 2


def pool_chunks(chunk_features: torch.Tensor, owner: torch.Tensor, num_tracklets: int,
                reduce: Literal["mean", "max"] = "mean") -> torch.Tensor:
    """Pool chunk embeddings [C, D] into tracklet embeddings [num_tracklets, D].

    owner [C] (int64) gives the tracklet index of each chunk. "mean" is the usual dense-chunk test protocol
    (jiyanggao / torchreid / posetap: average over non-overlapping chunks); "max" is the MARS Matlab baseline.
    Every tracklet must own at least one chunk.
    """
    if chunk_features.dim() != 2 or owner.shape != chunk_features.shape[:1]:
        raise ReidError(f"chunk features must be [C, D] with owner [C], got {tuple(chunk_features.shape)} and "
                        f"{tuple(owner.shape)}")
    owner = owner.to(chunk_features.device, torch.int64)
    counts = torch.bincount(owner, minlength=num_tracklets)
    if counts.numel() > num_tracklets or bool((counts == 0).any()):
        missing = torch.nonzero(counts[:num_tracklets] == 0).flatten()[:5].tolist()
        raise ReidError(f"every tracklet needs at least one chunk feature: tracklets {missing} have none "
                        f"(or an owner index is >= {num_tracklets})")
    d = chunk_features.shape[1]
    feats = chunk_features.float()
    if reduce == "mean":
        out = torch.zeros(num_tracklets, d, device=feats.device).index_add_(0, owner, feats)
        return out / counts[:, None].to(out.dtype)
    if reduce == "max":
        out = torch.full((num_tracklets, d), float("-inf"), device=feats.device)
        return out.scatter_reduce_(0, owner[:, None].expand(-1, d), feats, reduce="amax")
    raise ReidError(f"chunk pooling must be 'mean' or 'max', got {reduce!r}")


def tracklet_features(chunk_features: torch.Tensor, chunk_tracklets: Sequence[str], tracklet_ids: Sequence[str],
                      reduce: Literal["mean", "max"] = "mean", normalize: bool = False) -> torch.Tensor:
    """Embeddings [len(tracklet_ids), D] in the order of `tracklet_ids`, from chunk rows in any order.

    chunk_features [C, D]; chunk_tracklets [C] names the tracklet of each chunk row (as the inference rows carry it).
    """
    index = {t: i for i, t in enumerate(tracklet_ids)}
    unknown = [t for t in chunk_tracklets if t not in index]
    if unknown:
        raise ReidError(f"chunk rows name tracklets that are not being evaluated, e.g. {unknown[:3]}")
    owner = torch.tensor([index[t] for t in chunk_tracklets], dtype=torch.int64)
    out = pool_chunks(chunk_features, owner, len(tracklet_ids), reduce)
    return l2_normalize(out) if normalize else out
