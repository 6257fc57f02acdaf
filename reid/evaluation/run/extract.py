"""Tracklet features from a model, in-process: the per-record work of validation, `evaluate` and `reid search`.

A tracklet's test clips come from `reid.data.batching.make_test_clips` ([C, L, ...] with `data.test_sampler`); the
model embeds each clip and the clips' features are averaged (optionally also over the horizontally flipped clips).
Models that score pairs (`encode_sequences` + `pair_distance`, see reid.evaluation.pairwise) instead return the
per-frame states of all clips concatenated in time, [C * L, D]. With `eval.tta=astpn-official` a tracklet gives
[2, V, D]: the V views (reid.evaluation.multiview) of its probe clip (row 0) and of its gallery clip (row 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from reid.config.schema import ExperimentConfig
from reid.data.batching import BatchMaker, make_test_clips, to_torch
from reid.data.decode import read_frames
from reid.data.inputs import normalize_inputs
from reid.data.transforms import astpn_official_views
from reid.errors import ReidError
from reid.evaluation.multiview import role_frames, subtract_image_mean
from reid.evaluation.run.views import view_clips
from reid.models.state_file import unwrap
from reid.progress import bar as progress_bar
from reid.spec import MethodSpec


def _forward_clips(model: nn.Module, clips: dict[str, torch.Tensor], spec: MethodSpec, device: torch.device,
                   batch_size: int, states: bool, keep_extras: bool = False,
                   post: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    n = clips["frames"].shape[0]
    feats, extras = [], {}
    for start in range(0, n, batch_size):
        part = {k: v[start:start + batch_size] for k, v in clips.items()}
        part["pid"] = torch.zeros(part["frames"].shape[0], dtype=torch.int64)
        batch = normalize_inputs(part, spec, device)
        if post is not None:
            batch = post(batch)
        if states:
            feats.append(unwrap(model).encode_sequences(batch).float().cpu())
            continue
        if not keep_extras:
            feats.append(unwrap(model).forward_features(batch).float().cpu())
            continue
        out = unwrap(model)(batch)  # the whole forward: the report shows its attention outputs
        feats.append(out["features"].float().cpu())
        for key in ("temporal_weights", "spatial_maps"):
            if key in out and start == 0:
                extras[key] = out[key][:1].float().cpu()
    return torch.cat(feats), extras


def record_feature(model: nn.Module, maker: BatchMaker, index: int, cfg: ExperimentConfig, spec: MethodSpec,
                   device: torch.device, *, states: bool = False, keep_extras: bool = False
                   ) -> tuple[torch.Tensor, dict[str, Any]]:
    """One tracklet -> feature [D] (mean over clips, flip-averaged if eval.flip) or states [C*L, D]."""
    clips = to_torch(make_test_clips(maker, index))
    feats, extras = _forward_clips(model, clips, spec, device, cfg.eval.batch_size, states, keep_extras)
    if states:
        return feats.flatten(0, 1), {}
    feature = feats.mean(dim=0)
    if cfg.eval.flip:
        if set(clips) & {"flow", "pose_maps", "keypoints"}:
            raise ReidError("eval.flip supports frame-only methods (flipping flow or pose inputs is not defined)")
        clips["frames"] = clips["frames"].flip(-1)
        flipped, _ = _forward_clips(model, clips, spec, device, cfg.eval.batch_size, states)
        feature = (feature + flipped.mean(dim=0)) / 2
    if keep_extras:
        extras["frames"] = clips["frames"][0].permute(0, 2, 3, 1).numpy().astype(np.uint8)  # [L, H, W, 3]
    return feature, extras


def record_views(model: nn.Module, maker: BatchMaker, index: int, cfg: ExperimentConfig, spec: MethodSpec,
                 device: torch.device) -> torch.Tensor:
    """One tracklet -> [2, V, D] under `eval.tta=astpn-official` (ASTPN's test.lua): row 0 embeds its probe clip
    (first min(n, data.seq_len) frames), row 1 its gallery clip (last ones; `reid.evaluation.multiview.role_frames`),
    each under the V = 16 views of `astpn_official_views`, every cropped image minus its own mean
    (`subtract_image_mean`) after the method's input normalisation. `data.test_sampler` / `test_crop` are not used."""
    if set(maker.inputs) - {"frames", "flow"}:
        raise ReidError(f"eval.tta={cfg.eval.tta} supports frame (+ flow) methods; this one also needs "
                        f"{sorted(set(maker.inputs) - {'frames', 'flow'})}")
    rec = maker.manifest.records[index]
    views = astpn_official_views(cfg.data)
    rows: list[torch.Tensor] = []
    roles = [role_frames(rec.num_frames, cfg.data.seq_len, r) for r in ("query", "gallery")]
    for idx in roles:
        if rows and idx == roles[0]:  # a short tracklet: both roles see the same frames
            rows.append(rows[0])
            continue
        frames = read_frames(maker.manifest, rec, np.asarray(idx, dtype=np.int64), maker.decoder, tag=index)
        if "frame_size" in rec.extra:  # packed videos pad odd sizes (as BatchMaker.clip)
            h0, w0 = (int(v) for v in rec.extra["frame_size"].split("x"))
            frames = frames[:, :h0, :w0]
        clips = to_torch(view_clips(frames, views, flow="flow" in maker.inputs))
        feats, _ = _forward_clips(model, clips, spec, device, cfg.eval.batch_size, False, post=subtract_image_mean)
        rows.append(feats)
    return torch.stack(rows)


@torch.no_grad()
def extract_features(model: nn.Module, maker: BatchMaker, indices: list[int], cfg: ExperimentConfig,
                     spec: MethodSpec, device: torch.device, *, states: bool = False, progress: bool = False
                     ) -> list[torch.Tensor]:
    model.eval()
    it = progress_bar(indices, desc="features", unit="tracklets", leave=False, disable=not progress)
    if cfg.eval.tta != "none":
        if states:
            raise ReidError(f"eval.tta={cfg.eval.tta} embeds each view on its own; it cannot run with eval.pairwise")
        return [record_views(model, maker, i, cfg, spec, device) for i in it]
    return [record_feature(model, maker, i, cfg, spec, device, states=states)[0] for i in it]


def pad_states(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length [T_i, D] -> padded [N, T_max, D] and mask [N, T_max] (True = valid)."""
    t_max = max(s.shape[0] for s in states)
    out = torch.zeros(len(states), t_max, states[0].shape[1])
    mask = torch.zeros(len(states), t_max, dtype=torch.bool)
    for i, s in enumerate(states):
        out[i, :s.shape[0]] = s
        mask[i, :s.shape[0]] = True
    return out, mask
