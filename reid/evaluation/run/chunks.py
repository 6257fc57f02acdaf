"""The pure halves of Ray Data batch inference (reid.batch_inference runs them as actors; nothing here knows
about Ray): tracklet rows -> test clips (`DecodeTestClips`), clips -> embeddings (`EmbedChunks`), and the chunk
rows gathered on the driver -> one feature per tracklet (`tracklet_rows_to_features`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from reid.attribute_schema import AttributeSchema
from reid.config.schema import ExperimentConfig
from reid.data.batching import BatchMaker, make_test_clips
from reid.data.inputs import normalize_inputs
from reid.data.records import read_manifest
from reid.evaluation.features import pool_chunks
from reid.models.factory import build_method
from reid.spec import DataInfo


class DecodeTestClips:
    """{"index": [N]} manifest rows -> one row per (tracklet, test clip): `index`, `chunk` and the clip's inputs
    (`frames` uint8 [L, 3, H, W], ...), as `make_test_clips` cuts them (`data.test_sampler`)."""

    def __init__(self, manifest_path: str, cfg: dict, inputs: list[str]) -> None:
        self.maker = BatchMaker(read_manifest(manifest_path), ExperimentConfig.model_validate(cfg).data, inputs,
                                train=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {}
        for index in batch["index"]:
            clips = make_test_clips(self.maker, int(index))
            n = clips["frames"].shape[0]
            rows.setdefault("index", []).extend([int(index)] * n)
            rows.setdefault("chunk", []).extend(range(n))
            for key, value in clips.items():
                rows.setdefault(key, []).extend(list(value))
        return {k: np.stack(v) if k not in ("index", "chunk") else np.asarray(v) for k, v in rows.items()}


class EmbedChunks:
    """Clip rows -> `feature` [N, D] (`forward_features`, flip-averaged with `eval.flip`) or, with `states`, the
    per-frame states [N, L, D] of a pairwise model; the model comes from the factory with `state`'s weights."""

    def __init__(self, cfg: dict, state: Mapping[str, torch.Tensor], num_classes: int, attributes_json: str,
                 states: bool) -> None:
        self.cfg = ExperimentConfig.model_validate(cfg)
        info = DataInfo(num_classes=num_classes, attributes=AttributeSchema.from_json(attributes_json),
                        height=self.cfg.data.height, width=self.cfg.data.width)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        built = build_method(self.cfg, info, state, device=self.device)
        self.spec, self.model = built.spec, built.model
        self.states = states

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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


def tracklet_rows_to_features(rows: list[dict[str, Any]], indices: list[int], *, states: bool
                              ) -> dict[int, torch.Tensor]:
    """Chunk rows (any order) -> per tracklet of `indices`: the mean of its chunk features [D], or with `states`
    its chunks' states concatenated in chunk order [C * L, D]."""
    if states:
        per: dict[int, list[tuple[int, np.ndarray]]] = {}
        for r in rows:
            per.setdefault(int(r["index"]), []).append((int(r["chunk"]), r["feature"]))
        return {i: torch.from_numpy(np.concatenate([f for _, f in sorted(per[i], key=lambda x: x[0])]))
                for i in indices}
    order = {i: n for n, i in enumerate(indices)}
    feats = torch.from_numpy(np.stack([r["feature"] for r in rows]))
    owner = torch.tensor([order[int(r["index"])] for r in rows], dtype=torch.int64)
    pooled = pool_chunks(feats, owner, len(indices), "mean")
    return {i: pooled[n] for n, i in enumerate(indices)}
