"""`reid index`: embed a manifest's gallery (Ray Data batch inference, or this process for a small one without a
cluster: reid.evaluation.run.backend) and store it (store.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from reid import storage
from reid.deploy import ann, store
from reid.deploy.runs import LoadedRun
from reid.errors import ReidError
from reid.evaluation.run.backend import backend_line, choose_backend


def embed_manifest_rows(run: LoadedRun, manifest_path: Path | str, indices: list[int],
                        backend: str = "ray") -> np.ndarray:
    """Embeddings [N, D] of the manifest rows `indices`, L2-normalised when the run evaluates with `eval.normalize`.
    `ray`: `reid.batch_inference.extract_features_ray` (decoding actors -> model actors, built from the run's
    DataInfo, so `manifest_path` may be any manifest: new footage, no training rows); `local`: the same features
    (`reid.evaluation.run.extract`) in this process, on the device the run's model is on."""
    if backend == "ray":
        from reid.batch_inference import extract_features_ray

        feats = extract_features_ray(run.cfg, manifest_path, run.model, indices, info=run.info)
        emb = torch.stack([feats[i] for i in indices]).float()
    else:
        from reid.data.batching import BatchMaker
        from reid.data.records import read_manifest
        from reid.evaluation.run.extract import extract_features

        maker = BatchMaker(read_manifest(manifest_path), run.cfg.data, run.spec.inputs - {"attributes"}, train=False)
        try:
            device = next(run.model.parameters()).device
            emb = torch.stack(extract_features(run.model, maker, indices, run.cfg, run.spec, device,
                                               progress=True)).float().cpu()
        finally:
            maker.close()
    if run.cfg.eval.normalize:
        emb = torch.nn.functional.normalize(emb, dim=1)
    return emb.numpy()


def index_manifest(run: LoadedRun, manifest_path: Path | str, out: Path, *, roles: tuple[str, ...] = ("gallery",),
                   add: bool = False, kind: ann.Kind = "auto", backend: str = "auto") -> tuple[int, int]:
    """Build (or with `add`, extend) the index at `out`; returns (rows added, rows in the index). With `add`, rows
    already in the index (by tracklet_id) are skipped; when that leaves none, nothing is embedded or rewritten.
    `backend`: auto, ray or local (reid.evaluation.run.backend); what auto chose is printed.

    Checked before any file is written: the manifest has rows of `roles`; without `add`, `out` holds no index;
    with `add`, the index was built by this very model (hash and feature dim)."""
    from reid.data.records import manifest_file, read_manifest

    # the file itself (a local file, or a dataset in a bucket): the index and the embedding jobs name it
    manifest_path = manifest_file(storage.absolute(manifest_path))
    manifest = read_manifest(manifest_path)  # a missing one: its one-line ManifestError
    old = None
    if add:
        old = store.load_index(out)
        store.check_model(old.meta, run.model_hash, run.feature_dim, str(out))
    elif (out / store.META).exists():
        raise ReidError(f"{out} already holds an index; use --add to extend it or choose another --out")
    known = set(old.table.column("tracklet_id").to_pylist()) if old is not None else set()
    indices = [i for i, r in enumerate(manifest.records) if r.role in roles and r.tracklet_id not in known]
    if not indices and old is not None and any(r.role in roles for r in manifest.records):
        return 0, old.table.num_rows  # --add of footage already indexed: nothing to do, nothing rewritten
    if not indices:
        raise ReidError(f"empty gallery: {manifest_path} has no tracklets with role {'/'.join(roles)} "
                        f"(roles there: {sorted({r.role for r in manifest.records})})")
    chosen, why = choose_backend(backend, run.cfg, len(indices))
    if backend == "auto":
        print(backend_line(chosen, why), flush=True)
    emb = embed_manifest_rows(run, manifest_path, indices, chosen)
    table = store.gallery_table(manifest.records, indices, str(manifest_path), emb)
    if old is None:
        meta = {"model_hash": run.model_hash, "feature_dim": run.feature_dim, "distance": run.cfg.eval.distance,
                "l2_normalized": run.cfg.eval.normalize, "method": run.cfg.method, "run": storage.absolute(run.run_dir),
                "checkpoint": str(run.checkpoint)}
        index = store.build(meta, table, emb, kind)
    else:
        meta = old.meta
        table, index = store.extend(old, table, emb, kind)
    store.write_index(out, meta, table, index)
    return len(indices), len(table)
