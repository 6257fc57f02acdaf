"""Feature extraction as Ray Data batch inference.

tracklet rows -> decoding actors (`make_test_clips`: one row per (tracklet, chunk)) -> model actors (GPU when the
cluster has one; `eval.batch_size` chunks per call) -> chunk features collected on the driver -> per-tracklet
features by averaging the chunks (`reid.evaluation.features.tracklet_features`). Every worker's output is gathered
on the driver before any metric is computed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from reid.config.schema import ExperimentConfig
from reid.spec import DataInfo


class _DecodeTestClips:
    def __init__(self, manifest_path: str, cfg: dict, inputs: list[str]) -> None:
        from reid.data.batching import BatchMaker
        from reid.data.records import read_manifest

        self.maker = BatchMaker(read_manifest(manifest_path), ExperimentConfig.model_validate(cfg), inputs,
                                train=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from reid.data.batching import make_test_clips

        rows: dict[str, list] = {}
        for index in batch["index"]:
            clips = make_test_clips(self.maker, int(index))
            n = clips["frames"].shape[0]
            rows.setdefault("index", []).extend([int(index)] * n)
            rows.setdefault("chunk", []).extend(range(n))
            for key, value in clips.items():
                rows.setdefault(key, []).extend(list(value))
        return {k: np.stack(v) if k not in ("index", "chunk") else np.asarray(v) for k, v in rows.items()}


class _EmbedChunks:
    def __init__(self, cfg: dict, state_ref: Any, num_classes: int, attributes_json: str, states: bool) -> None:
        from reid.attribute_schema import AttributeSchema
        from reid.models.factory import build_method

        self.cfg = ExperimentConfig.model_validate(cfg)
        info = DataInfo(num_classes=num_classes, attributes=AttributeSchema.from_json(attributes_json),
                        height=self.cfg.data.height, width=self.cfg.data.width)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        state = ray.get(state_ref[0]) if isinstance(state_ref, list) else state_ref
        built = build_method(self.cfg, info, state, device=self.device)
        self.spec, self.model = built.spec, built.model
        self.states = states

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from reid.training.inputs import normalize_inputs

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()
                   if k not in ("index", "chunk")}
        tensors["pid"] = torch.zeros(len(batch["index"]), dtype=torch.int64)
        inputs = normalize_inputs(tensors, self.spec, self.device)
        if self.states:
            out = self.model.encode_sequences(inputs)
        else:
            out = self.model.forward_features(inputs)
            if self.cfg.eval.flip:
                inputs["frames"] = inputs["frames"].flip(-1)
                out = (out + self.model.forward_features(inputs)) / 2
        return {"index": batch["index"], "chunk": batch["chunk"], "feature": out.float().cpu().numpy()}


def extract_features_ray(cfg: ExperimentConfig, manifest_path: Path, model: torch.nn.Module, indices: list[int],
                         *, states: bool = False, info: DataInfo | None = None) -> dict[int, torch.Tensor]:
    """Features (or, with `states`, per-frame states [C*L, D]) of the tracklets `indices`, keyed by index.

    `info` is the DataInfo `model` was built with (the run's: its training identities and attribute schema); the
    model actors rebuild the same architecture from it before loading `model`'s weights. Without it, it is derived
    from the manifest read here, which is only right when that manifest is the one the run trained on: a gallery
    of new footage has other (or no) training identities, and the classifier's shape would not match.
    """
    from reid.data.info import data_info
    from reid.data.records import read_manifest
    from reid.evaluation.features import pool_chunks
    from reid.ray_runtime import init_ray
    from reid.registry import get_method

    init_ray(cfg.ray)
    spec = get_method(cfg.method)
    manifest = read_manifest(manifest_path)
    info = info if info is not None else data_info(manifest, cfg.data)
    state_ref = [ray.put({k: v.cpu() for k, v in model.state_dict().items()})]
    use_gpu = bool(ray.cluster_resources().get("GPU", 0)) and cfg.ray.use_gpu
    ds = ray.data.from_items([{"index": i} for i in indices], override_num_blocks=max(1, len(indices) // 8))
    ds = ds.map_batches(_DecodeTestClips, batch_size=4,
                        fn_constructor_kwargs={"manifest_path": str(Path(manifest_path).resolve()),
                                               "cfg": cfg.model_dump(mode="json"),
                                               "inputs": sorted(spec.inputs - {"attributes"} | {"frames"})},
                        compute=ray.data.ActorPoolStrategy(size=cfg.data.decode_workers),
                        num_cpus=cfg.data.decode_cpus)
    ds = ds.map_batches(_EmbedChunks, batch_size=cfg.eval.batch_size,
                        fn_constructor_kwargs={"cfg": cfg.model_dump(mode="json"), "state_ref": state_ref,
                                               "num_classes": info.num_classes,
                                               "attributes_json": info.attributes.to_json(), "states": states},
                        compute=ray.data.ActorPoolStrategy(size=1),
                        num_gpus=1 if use_gpu else 0, num_cpus=0.5)
    t0 = time.perf_counter()
    rows = ds.take_all()
    seconds = time.perf_counter() - t0
    # frames per clip: the states' length, else the test sampler's clip length (dense: L, others: T)
    chunk_len = cfg.data.test_chunk_len if cfg.data.test_sampler == "dense" else cfg.data.seq_len
    n_frames = sum(r["feature"].shape[0] for r in rows) if states else len(rows) * chunk_len
    print(f"[reid] features of {len(indices)} tracklets ({len(rows)} clips, ~{n_frames} frames) in {seconds:.1f} s: "
          f"{n_frames / max(seconds, 1e-9):.0f} frames/s", flush=True)
    order = {i: n for n, i in enumerate(indices)}
    if states:
        per: dict[int, list[tuple[int, np.ndarray]]] = {}
        for r in rows:
            per.setdefault(int(r["index"]), []).append((int(r["chunk"]), r["feature"]))
        return {i: torch.from_numpy(np.concatenate([f for _, f in sorted(per[i], key=lambda x: x[0])]))
                for i in indices}
    feats = torch.from_numpy(np.stack([r["feature"] for r in rows]))
    owner = torch.tensor([order[int(r["index"])] for r in rows], dtype=torch.int64)
    pooled = pool_chunks(feats, owner, len(indices), "mean")
    return {i: pooled[n] for n, i in enumerate(indices)}
