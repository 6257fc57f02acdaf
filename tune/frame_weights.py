"""The frame-weight check (`reid tune frame-weights`): does a temporal-attention model weight the frames where the
target is lost down, as its paper says it should?

Input: the run directories of one model config trained with S seeds (an ablation row's trials,
runs/ablations/<name>/runs/<name>-<trial>), evaluated on the data their config names (overrides may point it at
another suite). Per run and test tracklet with keypoints (reid.evaluation.run.frame_weights):

    g = mean_{v_t > 0} r_t - mean_{v_t = 0} r_t     r_t = w_t / mean_clip(w): relative weight, v_t: visibility
    rho = Spearman's rank correlation of w_t with v_t within a clip, averaged over the tracklet's clips

g > 0: frames that show the target get more weight than lost ones (mean pooling: g = 0 exactly).

Statistics as for an ablation table (tune/statistics.py): values [S, Q] over the S runs and the Q tracklets where
the value is defined in every run (a lost and a shown frame, for g; varying weights and visibility, for rho); the
frames depend on the data and the test sampler only, so the runs share their tracklets. Mean and 95% percentile
bootstrap interval over seeds and tracklets; verdict `down-weights` when the interval of g is above 0, `up-weights`
below, `no preference` when it holds 0 (for rho: `follows visibility`, `against visibility`, `no preference`);
with fewer than MIN_TRACKLETS tracklets the mean and interval are kept but the verdict is `too few tracklets`
(the interval would rest on a handful of tracklets, e.g. a suite with almost no lost frames).
Also the mean relative weight per visibility bin (pooled frames of all runs), the data of the plot.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reid.errors import ReidError
from reid.evaluation.run.frame_weights import (
    TrackletWeights,
    lost_gap,
    relative_weights,
    visibility_correlation,
    weight_shape,
)
from tune.statistics import estimate

# visibility bins of the plot: lost, then the share of joints shown
BINS: tuple[tuple[str, float, float], ...] = (("lost (0)", 0.0, 0.0), ("(0, 0.5]", 0.0, 0.5),
                                              ("(0.5, 0.8]", 0.5, 0.8), ("(0.8, 1]", 0.8, 1.0))
MIN_TRACKLETS = 20   # fewer tracklets with the value defined: no verdict
VERDICTS = {"lost_gap": ("down-weights lost frames", "up-weights lost frames", "no preference"),
            "rank_correlation": ("follows visibility", "against visibility", "no preference")}


def run_values(tracklets: list[TrackletWeights]) -> dict[str, dict[str, float]]:
    """Per tracklet id: g and rho (NaN where undefined)."""
    return {t.tracklet_id: {"lost_gap": lost_gap(t.weights, t.visibility),
                            "rank_correlation": visibility_correlation(t.weights, t.visibility)}
            for t in tracklets}


def paired_values(per_run: Sequence[dict[str, dict[str, float]]], key: str) -> tuple[np.ndarray, list[str]]:
    """[S, Q] values of `key` over the tracklets defined in every run (sorted ids), and those ids."""
    common = set.intersection(*(set(r) for r in per_run)) if per_run else set()
    ids = sorted(t for t in common if all(np.isfinite(r[t][key]) for r in per_run))
    return np.array([[r[t][key] for t in ids] for r in per_run], dtype=np.float64).reshape(len(per_run), len(ids)), ids


def summarize(per_run: Sequence[dict[str, dict[str, float]]], key: str) -> dict[str, Any]:
    """Mean, 95% CI, verdict and tracklet count of `key` (None mean and verdict 'undefined' without tracklets; a
    verdict only from MIN_TRACKLETS tracklets on)."""
    values, ids = paired_values(per_run, key)
    if not ids:
        return {"mean": None, "ci95": None, "verdict": "undefined", "tracklets": 0}
    est = estimate(values)
    above, below, neither = VERDICTS[key]
    verdict = above if est.lo > 0 else below if est.hi < 0 else neither
    if len(ids) < MIN_TRACKLETS:
        verdict = f"too few tracklets ({len(ids)} < {MIN_TRACKLETS})"
    return {"mean": est.mean, "ci95": est.as_list(), "verdict": verdict, "tracklets": len(ids),
            "per_seed": [float(v) for v in values.mean(axis=1)]}


def binned(runs: Sequence[list[TrackletWeights]]) -> list[dict[str, Any]]:
    """Mean relative weight of the frames in each visibility bin, pooled over runs and tracklets."""
    r = np.concatenate([relative_weights(t.weights).ravel() for ts in runs for t in ts])
    v = np.concatenate([np.asarray(t.visibility, dtype=np.float64).ravel() for ts in runs for t in ts])
    out = []
    for name, lo, hi in BINS:
        sel = v == 0 if hi == 0 else (v > lo) & (v <= hi)
        out.append({"bin": name, "frames": int(sel.sum()),
                    "mean_relative_weight": float(r[sel].mean()) if sel.any() else None})
    return out


def shape(runs: Sequence[list[TrackletWeights]]) -> dict[str, Any]:
    """Per run, the mean over tracklets of `weight_shape`: how large the weights' sum is and how unequal they are."""
    per_run = [np.array([weight_shape(t.weights) for t in ts]).reshape(-1, 2).mean(axis=0) for ts in runs]
    return {"sum_per_clip": [float(p[0]) for p in per_run], "coefficient_of_variation": [float(p[1]) for p in per_run],
            "about": "per run (seed): the mean over clips of sum_t w_t, and of std_t(w) / mean_t(w); a coefficient "
                     "of variation near 0 means the frames of a clip are weighted alike (a multiple of mean pooling)"}


def document(names: Sequence[str], runs: Sequence[list[TrackletWeights]], about: dict[str, Any]) -> dict[str, Any]:
    """The JSON the command writes: what ran, both statistics, the bins and each run's own means."""
    per_run = [run_values(ts) for ts in runs]
    frames = sum(t.visibility.size for ts in runs for t in ts)
    lost = sum(int((t.visibility == 0).sum()) for ts in runs for t in ts)
    return {**about, "date": dt.date.today().isoformat(), "runs": list(names), "seeds": len(runs),
            "tracklets": len(runs[0]) if runs else 0, "lost_frame_share": lost / frames if frames else 0.0,
            "lost_gap": summarize(per_run, "lost_gap"),
            "rank_correlation": summarize(per_run, "rank_correlation"),
            "bins": binned(runs), "weights": shape(runs),
            "definitions": {"lost_gap": "mean relative weight w_t / mean_clip(w) of frames showing the target "
                                        "(visibility > 0) minus that of lost frames (visibility 0), per tracklet",
                            "rank_correlation": "Spearman rho of w_t with visibility within a clip, averaged over "
                                                "the tracklet's clips",
                            "visibility": "share of the 18 COCO joints with keypoint confidence > 0",
                            "interval": "percentile bootstrap over seeds and tracklets, 95%"}}


def interval_text(summary: dict[str, Any]) -> str:
    """A `summarize` result as "+mean [+lo, +hi]"."""
    return f"{summary['mean']:+.3f} [{summary['ci95'][0]:+.3f}, {summary['ci95'][1]:+.3f}]"


def line(doc: dict[str, Any]) -> str:
    """One-line summary of a document."""
    def one(key: str, unit: str) -> str:
        s = doc[key]
        if s["mean"] is None:
            return f"{key} undefined (no tracklet with {unit})"
        return f"{key} {interval_text(s)} over {s['tracklets']} tracklets: {s['verdict']}"
    w = doc["weights"]
    return (f"{one('lost_gap', 'lost and shown frames')}; {one('rank_correlation', 'varying visibility')}; "
            f"weights per clip: sum {np.mean(w['sum_per_clip']):.2f}, coefficient of variation "
            f"{np.mean(w['coefficient_of_variation']):.4f}")


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Mean relative weight per visibility bin (1 = the clip's mean; mean pooling is the dashed line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = [b for b in doc["bins"] if b["mean_relative_weight"] is not None]
    if not bins:
        raise ReidError("frame-weights: no frame to plot")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.arange(len(bins))
    ax.bar(xs, [b["mean_relative_weight"] for b in bins], color="tab:blue")
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="uniform (mean pooling)")
    for x, b in zip(xs, bins, strict=True):
        ax.annotate(f"{b['mean_relative_weight']:.3f}\n{b['frames']} frames", (x, b["mean_relative_weight"]),
                    textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax.set_xticks(xs, [b["bin"] for b in bins])
    ax.set_xlabel("visibility of the target in the frame (share of joints shown)")
    ax.set_ylabel("mean relative temporal weight")
    def stat(key: str) -> str:
        s = doc[key]
        return "undefined" if s["mean"] is None else f"{interval_text(s)} ({s['tracklets']} tracklets): {s['verdict']}"

    ax.set_title(f"{doc.get('method')} ({doc.get('variant') or 'default'}) on {Path(doc['data_root']).name}, "
                 f"{doc['seeds']} seed(s)\nshown - lost relative weight {stat('lost_gap')}\n"
                 f"rank correlation with visibility {stat('rank_correlation')}", fontsize=9)
    ax.margins(y=0.2)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def frame_weight_check(run_dirs: Sequence[str | Path], out: Path, overrides: Sequence[str] = (), *,
                       limit: int = 0, progress: bool = True) -> tuple[Path, Path, dict[str, Any]]:
    """Run the check over `run_dirs` (one config, one run per seed): writes `out` (JSON) and its plot (`out` with
    .png); returns both paths and the document. ReidError when the runs are not one config."""
    from reid.config import build_config
    from reid.evaluation.run.discovery import find_run, local_config
    from reid.evaluation.run.frame_weights import tracklet_weights

    if not run_dirs:
        raise ReidError("frame-weights: give at least one run directory")
    found = []  # every run's config is read and compared before any model runs
    for path in run_dirs:
        run_dir, checkpoint = find_run(path)
        cfg = build_config(None, [local_config(run_dir)], list(overrides))
        key = (cfg.method, cfg.variant, str(cfg.data.root), cfg.data.seq_len)
        if found and key != found[0][3]:
            first = found[0][3]
            raise ReidError(f"frame-weights: {path} is {key[0]} ({key[1]}) on {key[2]}, T={key[3]}; the first run is "
                            f"{first[0]} ({first[1]}) on {first[2]}, T={first[3]}: give the seeds of one config")
        found.append((run_dir, checkpoint, cfg, key))
    runs = []
    for k, (run_dir, checkpoint, cfg, _) in enumerate(found):
        if progress:
            print(f"[reid] frame-weights: run {k + 1}/{len(found)} {run_dir}", flush=True)
        runs.append(tracklet_weights(cfg, checkpoint or run_dir, limit=limit))
    cfg = found[0][2]
    about = {"method": cfg.method, "variant": cfg.variant, "data_root": str(cfg.data.root),
             "seq_len": cfg.data.seq_len, "data": {"preset": cfg.data.synth_preset,
                                                   "strength": cfg.data.synth_strength}}
    doc = document([str(f[0]) for f in found], runs, about)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out, plot(doc, out.with_suffix(".png")), doc
