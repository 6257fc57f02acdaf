"""An index directory: what `reid index` writes and `reid search` / `reid serve` read.

    DIR/meta.json        model hash, feature dim, distance, method, run, checkpoint, index kind, count
    DIR/gallery.parquet  one row per tracklet: tracklet_id, pid, camid, source (manifest), record (its index
                         there), embedding (float32 [D], L2-normalised when the run evaluates with eval.normalize)
    DIR/index.faiss      FAISS index over the embeddings, row i = Parquet row i (ann.py)

Every check runs before anything is written, and files are written to temporary names then renamed (meta.json
last), so a refused or failed `reid index` leaves an existing index as it was.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reid.deploy import ann
from reid.errors import ReidError

FORMAT_VERSION = 1
META, TABLE, FAISS = "meta.json", "gallery.parquet", "index.faiss"


@dataclass
class GalleryIndex:
    meta: dict[str, Any]
    table: pa.Table
    index: Any

    @property
    def embeddings(self) -> np.ndarray:
        col = self.table.column("embedding").combine_chunks()
        return np.asarray(col.values, dtype=np.float32).reshape(len(self.table), -1)


def load_index(path: Path) -> GalleryIndex:
    import faiss

    path = Path(path)
    if not (path / META).is_file():
        raise ReidError(f"{path} is not an index directory (no {META}); build one with `reid index RUN --manifest M "
                        f"--out {path}`")
    meta = json.loads((path / META).read_text())
    table = pq.read_table(path / TABLE)
    index = faiss.read_index(str(path / FAISS))
    if index.ntotal != len(table) or meta.get("count") != len(table):
        raise ReidError(f"index {path} is inconsistent: {index.ntotal} vectors, {len(table)} Parquet rows, "
                        f"meta says {meta.get('count')}; rebuild it")
    if len(table) == 0:
        raise ReidError(f"index {path} has an empty gallery")
    return GalleryIndex(meta, table, index)


def check_model(meta: dict[str, Any], model_hash: str, feature_dim: int, where: str) -> None:
    """Refuse to mix feature spaces: the index must have been built by this very model."""
    if meta["feature_dim"] != feature_dim:
        raise ReidError(f"index {where} holds {meta['feature_dim']}-d embeddings but this model gives "
                        f"{feature_dim}-d ones: it was built by another model ({meta['method']}, {meta['run']})")
    if meta["model_hash"] != model_hash:
        raise ReidError(f"index {where} was built by another model (hash {meta['model_hash']}, run {meta['run']}); "
                        f"this model's hash is {model_hash}: rebuild the index with this run")


def gallery_table(records: list, indices: list[int], source: str, emb: np.ndarray) -> pa.Table:
    d = emb.shape[1]
    flat = pa.array(np.ascontiguousarray(emb, dtype=np.float32).ravel(), type=pa.float32())
    return pa.table({
        "tracklet_id": pa.array([records[i].tracklet_id for i in indices], pa.string()),
        "pid": pa.array([int(records[i].pid) for i in indices], pa.int64()),
        "camid": pa.array([int(records[i].camid) for i in indices], pa.int64()),
        "source": pa.array([source] * len(indices), pa.string()),
        "record": pa.array(indices, pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, d),
    })


def write_index(path: Path, meta: dict[str, Any], table: pa.Table, index: Any) -> None:
    """Write all three files under temporary names, then rename them into place (meta.json last)."""
    import faiss

    path.mkdir(parents=True, exist_ok=True)
    tmp = {name: path / f".{name}.tmp" for name in (TABLE, FAISS, META)}
    try:
        pq.write_table(table, tmp[TABLE])
        faiss.write_index(index, str(tmp[FAISS]))
        tmp[META].write_text(json.dumps({**meta, "count": len(table), "format_version": FORMAT_VERSION,
                                         "index_kind": ann.kind_of(index)}, indent=2))
        for name in (TABLE, FAISS, META):
            os.replace(tmp[name], path / name)
    finally:
        for p in tmp.values():
            p.unlink(missing_ok=True)


def build(meta: dict[str, Any], table: pa.Table, emb: np.ndarray, kind: ann.Kind = "auto") -> Any:
    """A new FAISS index over `emb` [N, D] (row order = table order)."""
    sample = emb[np.random.default_rng(0).permutation(len(emb))[:100_000]] if len(emb) else None
    index = ann.new_index(emb.shape[1], len(emb), meta["distance"], kind, train_sample=sample)
    index.add(ann.prepare(emb, meta["distance"]))
    return index


def extend(old: GalleryIndex, table: pa.Table, emb: np.ndarray, kind: ann.Kind = "auto") -> tuple[pa.Table, Any]:
    """Append rows: added to the existing FAISS index, or everything re-indexed when the gallery outgrows the
    exact index (or `kind` asks for another one)."""
    merged = pa.concat_tables([old.table, table.cast(old.table.schema)])
    wanted = ann.choose_kind(len(merged), kind)
    current = ann.kind_of(old.index)
    if wanted == current and (kind != "auto" or current != "flat" or len(merged) <= ann.EXACT_MAX):
        old.index.add(ann.prepare(emb, old.meta["distance"]))
        return merged, old.index
    all_emb = np.concatenate([old.embeddings, emb])
    return merged, build(old.meta, merged, all_emb, kind)
