"""Score normalisation of a query x gallery distance matrix (posetap paper, Jones & Rambhatla, BMVC 2019, sec. 4.4
and table 2, "Ours + Score Normalization").

The paper: "Each similarity score is normalized by subtracting the means and dividing by the standard deviations of
that score's row and column. [...] a similarity score is relative to how unique a particular gallery (or probe)
image is" — the technique it cites from speaker verification. The sentence leaves open how the row and column
statistics combine; the project implements the symmetric form used there (S-norm: the average of the row z-score
and the column z-score) as the default, and the one-sided forms as options:

    z_row(i, j) = (d_ij - mean_j' d_ij') / std_j' d_ij'          (row i = one query against every gallery item)
    z_col(i, j) = (d_ij - mean_i' d_i'j) / std_i' d_i'j          (column j = one gallery item against every query)
    symmetric   = (z_row + z_col) / 2

Standard deviations are population ones (ddof=0). z_row alone does not change any query's ranking (it is monotone
within a row); the column term is what re-orders the gallery for a query. Statistics run over the whole matrix
given (all gallery items of the protocol, same-camera ones included).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from reid.errors import ReidError

NormMode = Literal["symmetric", "row", "column"]


def score_normalize(dist: torch.Tensor | np.ndarray, mode: NormMode = "symmetric",
                    eps: float = 1e-12) -> torch.Tensor:
    """Normalised distances (smaller = more similar), dist [Nq, Ng] -> [Nq, Ng] float32 (float64 stays float64)."""
    if mode not in ("symmetric", "row", "column"):
        raise ReidError(f"score normalisation mode must be 'symmetric', 'row' or 'column', got {mode!r}")
    d = dist if isinstance(dist, torch.Tensor) else torch.as_tensor(np.asarray(dist))
    if d.dim() != 2:
        raise ReidError(f"score normalisation needs a 2-D distance matrix, got shape {tuple(d.shape)}")
    if d.dtype != torch.float64:
        d = d.float()
    out = None
    if mode in ("symmetric", "row"):
        out = (d - d.mean(1, keepdim=True)) / d.std(1, keepdim=True, unbiased=False).clamp(min=eps)
    if mode in ("symmetric", "column"):
        zc = (d - d.mean(0, keepdim=True)) / d.std(0, keepdim=True, unbiased=False).clamp(min=eps)
        out = zc if out is None else (out + zc) / 2
    assert out is not None
    return out
