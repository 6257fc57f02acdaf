"""Per-frame temporal weights of a trained model beside the per-frame visibility of the target: the data of the
frame-weight check (`reid tune frame-weights`; its statistics are in tune/frame_weights.py).

The temporal attention of adfta (T), posetap (TAP), fcnta (lambda, eq. 1b) and astpn (ATPN) is meant to weight
occluded and lost frames down. Where a dataset has keypoints, they say which frames those are: a joint under an
occluder, outside the frame or in a frame where the target is lost has confidence 0 (the synthetic suites,
reid/data/synth/scene.py), so a frame's visibility is

    v_t = |{j : c_tj > 0}| / J        (J = 18 COCO joints; v_t = 0: the target is lost)

Every test tracklet (query and gallery of `eval.protocol`) with keypoints goes through the model's whole forward on
its evaluation clips (the frames of `reid.data.batching.eval_clip_indices`, as `reid eval` embeds them): the
model's `temporal_weights` w [C, L] ([C, L, G] for per-group weights, adfta and posetap's TAP: averaged over the G
groups) are kept beside v [C, L] of the same frames. Within a clip the weights are compared relative to their mean,
r_t = w_t / mean_s w_s, so sigmoid weights (any sum) and softmax weights (sum 1) read alike and mean pooling is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from reid.config.schema import ExperimentConfig
from reid.data.batching import BatchMaker, eval_clip_indices, make_test_clips, to_torch
from reid.data.info import data_info
from reid.data.inputs import normalize_inputs
from reid.data.records import read_manifest
from reid.data.source import manifest_path
from reid.errors import ReidError
from reid.evaluation.protocols import get_protocol
from reid.evaluation.run.evaluate import build_for_eval
from reid.models.state_file import unwrap
from reid.spec import MethodSpec

UNIFORM_TOL = 1e-6


@dataclass(frozen=True)
class TrackletWeights:
    """One tracklet's evaluation clips: the model's weights and the target's visibility, frame by frame."""

    tracklet_id: str
    weights: np.ndarray  # float [C, L]
    visibility: np.ndarray  # float [C, L] in [0, 1]


def visibility(keypoints: np.ndarray) -> np.ndarray:
    """Keypoints [T, J, 3] (x, y, confidence) -> v [T]: the fraction of the J joints with confidence > 0."""
    return (np.asarray(keypoints)[..., 2] > 0).mean(axis=-1)


def relative_weights(weights: np.ndarray) -> np.ndarray:
    """w [C, L] -> r [C, L] = w / (mean of w over the clip's L frames); 1 everywhere for uniform weights."""
    w = np.asarray(weights, dtype=np.float64)
    return w / w.mean(axis=1, keepdims=True)


def weight_shape(weights: np.ndarray) -> tuple[float, float]:
    """w [C, L] -> (mean over clips of sum_t w_t, mean over clips of the coefficient of variation std_t(w) /
    mean_t(w)). The sum is 1 for softmax and for mean pooling (w_t = 1 / L), anything in (0, L) for sigmoid weights.
    A coefficient of variation near 0 means the clip's frames are weighted alike whatever the sum: the weighted sum
    sum_t w_t z_t is then (sum_t w_t) times mean pooling."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum(axis=1).mean()), float((w.std(axis=1) / w.mean(axis=1)).mean())


def lost_gap(weights: np.ndarray, vis: np.ndarray) -> float:
    """Mean relative weight of the frames that show the target (v > 0) minus that of the lost frames (v = 0), over
    the tracklet's clips pooled; > 0: lost frames are weighted down. NaN when the clips lack either kind."""
    r, lost = relative_weights(weights), np.asarray(vis) == 0
    if not lost.any() or lost.all():
        return float("nan")
    return float(r[~lost].mean() - r[lost].mean())


def visibility_correlation(weights: np.ndarray, vis: np.ndarray) -> float:
    """Spearman's rank correlation of w with v within each clip where both vary, averaged over those clips; > 0:
    the more of the target a frame shows, the more weight. NaN when no clip has both varying."""
    rhos = []
    for w, v in zip(np.asarray(weights, dtype=np.float64), np.asarray(vis, dtype=np.float64), strict=True):
        if np.ptp(w) <= UNIFORM_TOL * max(abs(float(w.mean())), 1.0) or np.ptp(v) == 0:
            continue
        rhos.append(float(spearmanr(w, v).statistic))
    return float(np.mean(rhos)) if rhos else float("nan")


@torch.no_grad()
def tracklet_weights(cfg: ExperimentConfig, checkpoint: Path | str, *, limit: int = 0
                     ) -> list[TrackletWeights]:
    """The checkpoint's weights and visibility on every test tracklet of `cfg.data` that has keypoints (the first
    `limit` of them in manifest order when limit > 0). ReidError when the model gives no temporal weights or no
    test tracklet has keypoints."""
    m = read_manifest(manifest_path(cfg.data))
    built, _ = build_for_eval(cfg, data_info(m, cfg.data), checkpoint)
    spec, model = built.spec, unwrap(built.model)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    split = get_protocol(cfg.eval.protocol, dataset=m.dataset or cfg.data.dataset).split(m.records)
    indices = [i for i in sorted(set(split.query.tolist()) | set(split.gallery.tolist())) if m.records[i].keypoints]
    if not indices:
        raise ReidError(f"no test tracklet of {cfg.data.root} has keypoints: the frame-weight check reads each "
                        f"frame's visibility from them (prepare the dataset with keypoints, or use a synthetic suite)")
    indices = indices[:limit] if limit > 0 else indices
    maker = BatchMaker(m, cfg.data, spec.inputs - {"attributes"}, train=False)
    out: list[TrackletWeights] = []
    try:
        for i in indices:
            rec = m.records[i]
            idx = eval_clip_indices(cfg.data, rec.num_frames)
            kps = np.load(maker.decoder.local_file(m.locate(rec.keypoints)), mmap_mode="r")
            vis = visibility(kps)[np.clip(idx, 0, len(kps) - 1)]
            out.append(TrackletWeights(rec.tracklet_id, _clip_weights(model, maker, i, spec, device,
                                                                      cfg.eval.batch_size), vis))
    finally:
        maker.close()
    return out


def _clip_weights(model: torch.nn.Module, maker: BatchMaker, index: int, spec: MethodSpec, device: torch.device,
                  batch_size: int) -> np.ndarray:
    """The model's temporal weights on one tracklet's evaluation clips: float [C, L] (groups averaged)."""
    clips = to_torch(make_test_clips(maker, index))
    parts = []
    for start in range(0, clips["frames"].shape[0], batch_size):
        part = {k: v[start:start + batch_size] for k, v in clips.items()}
        part["pid"] = torch.zeros(part["frames"].shape[0], dtype=torch.int64)
        result = model(normalize_inputs(part, spec, device))
        if "temporal_weights" not in result:
            raise ReidError(f"{spec.name} gives no per-frame temporal weights: the frame-weight check needs a "
                            f"temporal-attention model (adfta, posetap with TAP, fcnta, astpn)")
        w = result["temporal_weights"].float().cpu()
        parts.append(w.mean(dim=2) if w.ndim == 3 else w)
    return torch.cat(parts).numpy().astype(np.float64)
