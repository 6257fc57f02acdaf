"""`reid search`: one query tracklet against an index directory; top-k with distances, optional re-ranking."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reid.data.records import TrackletRecord
from reid.deploy import ann, store
from reid.deploy.runs import LoadedRun
from reid.errors import ReidError


@dataclass
class Hit:
    rank: int
    row: int
    tracklet_id: str
    pid: int
    camid: int
    distance: float
    source: str
    record: int


@dataclass
class SearchResult:
    hits: list[Hit]
    reranked: bool = False
    meta: dict = field(default_factory=dict)


def known_identity(query: TrackletRecord, meta: dict[str, str]) -> bool:
    """Whether hits can be told right or wrong: the query has a pid (a manifest row, not a frames directory or a
    video: pid -1) that its manifest does not list as a distractor or junk pid (MARS: 0 and -1)."""
    unknown = {int(p) for key in ("distractor_pids", "junk_pids") for p in meta.get(key, "").split(",") if p.strip()}
    return query.pid >= 0 and query.pid not in unknown


def match(query: TrackletRecord, hit: Hit) -> str:
    """`yes` where a hit is the query's identity from another camera (what re-ID scores), `same camera` where it is
    the identity in the query's own camera (left out of the metrics), "" otherwise."""
    if hit.pid != query.pid:
        return ""
    return "same camera" if hit.camid == query.camid else "yes"


def first_match_line(query: TrackletRecord, hits: list[Hit]) -> str:
    """`first match from another camera: rank 2 of 10` (or none in the top k)."""
    rank = next((h.rank for h in hits if match(query, h) == "yes"), None)
    if rank is None:
        return f"no match from another camera in the top {len(hits)}"
    return f"first match from another camera: rank {rank} of {len(hits)}"


def open_for(run: LoadedRun, index_dir: Path) -> store.GalleryIndex:
    """Load an index and check that `run`'s model built it."""
    gallery = store.load_index(index_dir)
    store.check_model(gallery.meta, run.model_hash, run.feature_dim, str(index_dir))
    return gallery


def search_embedding(gallery: store.GalleryIndex, query: np.ndarray, k: int = 10, *, rerank: bool = False,
                     shortlist: int = 100, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> SearchResult:
    """Top-k of `query` [D]. With `rerank`, k-reciprocal re-ranking (reid.evaluation.rerank) of the query and its
    `shortlist` nearest gallery tracklets from the index, the original distances taken exactly from the stored
    embeddings (neighbours outside the shortlist do not take part: docs/deploy.md)."""
    if query.shape != (gallery.meta["feature_dim"],):
        raise ReidError(f"query embedding has shape {query.shape}, the index holds {gallery.meta['feature_dim']}-d")
    distance = gallery.meta["distance"]
    n = gallery.index.ntotal
    dist, ids = ann.search(gallery.index, query[None], max(k, shortlist) if rerank else k, distance)
    ids, dist = ids[0][ids[0] >= 0], dist[0][ids[0] >= 0]
    if rerank and len(ids) >= 2:
        import torch

        from reid.evaluation.rerank import rerank_features

        cand = gallery.embeddings[ids]
        metric = "cosine" if distance == "cosine" else "sqeuclidean"
        re = rerank_features(torch.from_numpy(query[None]), torch.from_numpy(cand), k1=min(k1, len(ids)),
                             k2=min(k2, len(ids)), lambda_value=lambda_value, metric=metric)[0]
        order = np.argsort(re, kind="stable")[:k]
        ids, dist = ids[order], re[order]
    else:
        ids, dist = ids[:k], dist[:k]
    cols = {c: gallery.table.column(c).to_pylist() for c in ("tracklet_id", "pid", "camid", "source", "record")}
    hits = [Hit(rank=r + 1, row=int(i), tracklet_id=cols["tracklet_id"][i], pid=cols["pid"][i],
                camid=cols["camid"][i], distance=float(d), source=cols["source"][i], record=cols["record"][i])
            for r, (i, d) in enumerate(zip(ids.tolist(), dist.tolist(), strict=True))]
    return SearchResult(hits=hits, reranked=rerank and len(ids) >= 2, meta={"gallery": n})
