"""FAISS indexes over tracklet embeddings: exact below a size threshold, approximate above it.

Distances follow the run's `eval.distance` on the stored (already L2-normalised when `eval.normalize`) embeddings:
"euclidean" searches squared L2 in FAISS and reports its square root; "cosine" searches inner products of
L2-normalised vectors and reports 1 - cos. Kinds:
  flat   exact (IndexFlat), the default below `EXACT_MAX` embeddings
  hnsw   HNSW graph over the full vectors (IndexHNSWFlat, M=32): high recall, 4 D bytes + ~0.3 KB per vector
  ivfpq  inverted lists + product quantisation (64 sub-vectors x 8 bits): 64 bytes per vector, for galleries that
         do not fit in memory as float32 (1,000,000 x 2048-d float32 is 8 GB; its IVF-PQ codes are 64 MB)
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from reid.errors import ReidError

# faiss logs each SIMD build it tries (avx512, avx2) as a failed import at INFO; only the one it loads matters
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

Kind = Literal["auto", "flat", "hnsw", "ivfpq"]
EXACT_MAX = 50_000
HNSW_MAX = 300_000


def choose_kind(n: int, kind: Kind = "auto") -> str:
    if kind != "auto":
        return kind
    return "flat" if n <= EXACT_MAX else ("hnsw" if n <= HNSW_MAX else "ivfpq")


def _metric(distance: str) -> int:
    import faiss

    if distance not in ("euclidean", "cosine"):
        raise ReidError(f"unknown distance '{distance}'; expected euclidean or cosine")
    return faiss.METRIC_L2 if distance == "euclidean" else faiss.METRIC_INNER_PRODUCT


def prepare(x: np.ndarray, distance: str) -> np.ndarray:
    """float32 C-contiguous [N, D]; unit rows for cosine."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if distance == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def new_index(dim: int, n_expected: int, distance: str, kind: Kind = "auto", *, train_sample: np.ndarray | None = None,
              nprobe: int = 32, ef_search: int = 128):
    """An empty index of `kind` for about `n_expected` vectors; IVF-PQ is trained on `train_sample` [M, D]."""
    import faiss

    kind = choose_kind(n_expected, kind)
    metric = _metric(distance)
    if kind == "flat":
        return faiss.IndexFlat(dim, metric)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, metric)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = ef_search
        return index
    if kind == "ivfpq":
        if dim % 64:
            raise ReidError(f"ivfpq needs a feature dim divisible by 64 (64 sub-quantisers), got {dim}")
        if train_sample is None or len(train_sample) < 256:
            raise ReidError("ivfpq needs at least 256 embeddings to train its quantisers; use --kind flat or hnsw")
        nlist = int(min(4096, max(16, 4 * math.sqrt(n_expected)), len(train_sample) // 39))
        quantizer = faiss.IndexFlat(dim, metric)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, 64, 8, metric)
        # the 64 sub-quantisers' k-means (256 centroids of D/64-d points) train on <= 16,384 residuals, 10 rounds:
        # faiss's defaults (65,536, 25 rounds) took minutes of one core here for a few-second coarse quantiser
        index.pq.cp.max_points_per_centroid = 64
        index.pq.cp.niter = 10
        index.train(prepare(train_sample, distance))
        index.nprobe = min(nprobe, nlist)
        return index
    raise ReidError(f"unknown index kind '{kind}'; expected auto, flat, hnsw or ivfpq")


def kind_of(index) -> str:
    import faiss

    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivfpq"
    return "flat"


def search(index, queries: np.ndarray, k: int, distance: str) -> tuple[np.ndarray, np.ndarray]:
    """(distances [Q, k] in the run's metric, ascending; row ids [Q, k], -1 where fewer than k exist)."""
    k = min(k, index.ntotal)
    scores, ids = index.search(prepare(queries, distance), k)
    if distance == "cosine":
        return (1.0 - scores).astype(np.float32), ids
    return np.sqrt(np.maximum(scores, 0.0)).astype(np.float32), ids
