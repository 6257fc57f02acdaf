"""`eval.tta=astpn-official`: ASTPN's official test-time augmentation (test.lua, `computeCMC_MeanPool_RNN`).

Each check is against a naive loop written from the official code:

    for shiftx = 1,8 do for doflip = 1,2 do  shifty = shiftx
        u = frame; if doflip == 1 then u = image.hflip(u) end
        u = image.crop(u, shiftx, shifty, 40 + shiftx, 56 + shifty)   -- 0-based [x1, x2) x [y1, y2)
        u = u - torch.mean(u)
        ... simMat[i][j] = simMat[i][j] + sqrt(sum((fa - fb)^2))
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reid.config import build_config
from reid.data.transforms import astpn_official_views
from reid.errors import ConfigError, ReidError
from reid.evaluation.multiview import multiview_distance, role_frames, subtract_image_mean
from reid.evaluation.protocols import EvalSplit
from reid.evaluation.run.evaluate import evaluate
from reid.evaluation.run.scoring import multiview_to_metrics
from reid.evaluation.run.views import view_clips


def _astpn(*overrides: str):
    return build_config("astpn", ["astpn-synthetic"], list(overrides))  # 56x40 windows of 64x48 frames, pad 0


def _naive_views(frames: np.ndarray) -> list[np.ndarray]:
    """test.lua's loop on uint8 [T, 64, 48, 3] frames -> 16 clips [T, 56, 40, 3] (before the mean subtraction)."""
    out = []
    for shift in range(1, 9):
        for doflip in (1, 2):
            clip = []
            for u in frames:
                if doflip == 1:
                    u = u[:, ::-1]
                clip.append(u[shift:56 + shift, shift:40 + shift])
            out.append(np.stack(clip))
    return out


def test_views_match_the_official_crop_and_flip_loop():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 64, 48, 3), dtype=np.uint8)
    views = astpn_official_views(_astpn().data)
    got = view_clips(frames, views, flow=False)["frames"]  # [V, T, 3, 56, 40]
    want = _naive_views(frames)
    assert got.shape == (16, 3, 3, 56, 40)
    for v in range(16):
        np.testing.assert_array_equal(got[v].transpose(0, 2, 3, 1), want[v])
    assert len({v.tobytes() for v in want}) == 16  # 16 distinct windows: the check above sees every one


def test_flipped_view_with_the_crop_offset_read_unflipped_is_wrong():
    """A broken generator that crops flipped frames at column s of the UNflipped frame (crop, then flip) gives
    other pixels than the official flip-then-crop, so the check above can fail."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(2, 64, 48, 3), dtype=np.uint8)
    official = _naive_views(frames)[0]  # shift 1, flipped
    broken = frames[:, 1:57, 1:41][:, :, ::-1]
    assert not np.array_equal(official, broken)


def test_views_need_room_for_eight_offsets():
    with pytest.raises(ReidError, match="8 px of room"):
        astpn_official_views(build_config("astpn", ["astpn-synth-cpu"], []).data)  # 64x32 -> 56x28: 4 px across


def test_subtract_image_mean_matches_a_per_image_loop():
    g = torch.Generator().manual_seed(0)
    batch = {"frames": torch.randn(2, 3, 3, 5, 4, generator=g) + 2.0, "flow": torch.rand(2, 3, 2, 5, 4, generator=g),
             "pid": torch.zeros(2)}
    got = subtract_image_mean(batch)
    for b in range(2):
        for t in range(3):
            u = torch.cat([batch["frames"][b, t], batch["flow"][b, t]])  # the 5-channel image of test.lua
            u = u - u.mean()
            assert torch.allclose(got["frames"][b, t], u[:3], atol=1e-6)
            assert torch.allclose(got["flow"][b, t], u[3:], atol=1e-6)
    assert got["pid"] is batch["pid"]
    frames_only = subtract_image_mean({"frames": batch["frames"]})["frames"]
    assert torch.allclose(frames_only.mean(dim=(-3, -2, -1)), torch.zeros(2, 3), atol=1e-5)


def test_role_frames_are_first_and_last_sample_length():
    # test.lua: probe seq[1 .. L]; gallery seq[seqOffset .. seqOffset + L - 1], seqOffset = seqLen - L + 1 (1-based)
    n, length = 20, 16
    assert role_frames(n, length, "query") == list(range(0, 16))
    assert role_frames(n, length, "gallery") == [i - 1 for i in range(n - length + 1, n + 1)]
    assert role_frames(10, 16, "query") == role_frames(10, 16, "gallery") == list(range(10))  # short: used whole
    with pytest.raises(ReidError, match="unknown role"):
        role_frames(10, 4, "probe")  # type: ignore[arg-type]


def _naive_summed(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(q.shape[0], g.shape[0])
    for i in range(q.shape[0]):
        for j in range(g.shape[0]):
            for v in range(q.shape[1]):
                out[i, j] += math.sqrt(float(((q[i, v] - g[j, v]) ** 2).sum()))
    return out


def test_multiview_distance_matches_the_double_loop():
    g = torch.Generator().manual_seed(0)
    q, gal = torch.randn(4, 16, 6, generator=g), torch.randn(7, 16, 6, generator=g)
    assert torch.allclose(multiview_distance(q, gal), _naive_summed(q, gal), atol=1e-4)
    normed = multiview_distance(q, gal, normalize=True)
    qn, gn = torch.nn.functional.normalize(q, dim=2), torch.nn.functional.normalize(gal, dim=2)
    assert torch.allclose(normed, _naive_summed(qn, gn), atol=1e-4)
    with pytest.raises(ReidError, match="same V and D"):
        multiview_distance(q, gal[:, :8])


def _averaged_features(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # broken: one feature per sequence
    return torch.cdist(q.mean(1), g.mean(1))


def _concatenated_features(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # broken: sqrt(sum_v d_v^2)
    return torch.cdist(q.flatten(1), g.flatten(1))


def test_summed_distance_ranks_unlike_averaged_or_concatenated_features():
    """One query, three gallery sequences, V = 2 views, D = 1; per-view distances to the query: gallery 0 (1, 1),
    gallery 1 (1.9, 0), gallery 2 (3, 3). Official sum: 2, 1.9, 6 -> [1, 0, 2]. Averaging each sequence's views
    first: 1, 0.95, 0 -> [2, 1, 0]. Concatenating the views: sqrt(2), 1.9, 4.24 -> [0, 1, 2]."""
    q = torch.tensor([[[0.0], [0.0]]])
    g = torch.tensor([[[1.0], [1.0]], [[1.9], [0.0]], [[3.0], [-3.0]]])
    want = [1, 0, 2]  # the official ranking by summed distances
    assert _naive_summed(q, g).argsort(dim=1)[0].tolist() == want
    assert multiview_distance(q, g).argsort(dim=1)[0].tolist() == want
    assert _averaged_features(q, g).argsort(dim=1)[0].tolist() == [2, 1, 0]
    assert _concatenated_features(q, g).argsort(dim=1)[0].tolist() == [0, 1, 2]


def test_tta_rejects_options_it_cannot_combine_and_unknown_modes():
    with pytest.raises(ConfigError, match="eval.tta: Input should be 'none' or 'astpn-official'"):
        _astpn("eval.tta=astpn")
    for clash in ("eval.flip=true", "eval.rerank=true", "eval.pairwise=true"):
        with pytest.raises(ConfigError, match="cannot be combined"):
            _astpn("eval.tta=astpn-official", clash)
    assert _astpn().eval.tta == "none"  # the default evaluation is the single view


def test_single_view_features_are_a_clear_error():
    """What the Ray backend hands back (one [D] feature per tracklet) is not enough for the summed distance."""
    ev = _astpn("eval.tta=astpn-official").eval
    split = EvalSplit(query=np.array([0]), gallery=np.array([1]), label="x")
    with pytest.raises(ReidError, match="--backend local"):
        multiview_to_metrics({0: torch.zeros(8), 1: torch.zeros(8)}, [], split, ev)


@pytest.mark.timeout(300)
def test_evaluate_with_tta_gives_finite_metrics_on_a_tiny_set(tiny_synth):
    common = [f"data.root={tiny_synth}", "ray.num_workers=0", "data.seq_len=4", "model.hidden=16"]
    torch.manual_seed(0)
    one = evaluate(_astpn(*common), checkpoint=None, progress=False)
    torch.manual_seed(0)  # the same untrained weights
    cfg = build_config("astpn", ["astpn-synthetic", "astpn-official-tta"], common)  # the named overlay
    assert cfg.eval.tta == "astpn-official"
    tta = evaluate(cfg, checkpoint=None, progress=False)
    assert tta.distmat.shape == one.distmat.shape
    assert np.isfinite(tta.distmat).all() and (tta.distmat >= 0).all()
    assert not np.allclose(tta.distmat, one.distmat)  # 16 summed views, not the single centre crop
    for key in ("mAP", "R1", "R5"):
        assert math.isfinite(tta.metrics[key]) and 0 <= tta.metrics[key] <= 100
    assert tta.metrics["valid_queries"] > 0


def test_an_injected_extractor_is_refused_before_it_runs(tiny_synth):
    """`reid eval` defaults to Ray Data extraction (one [D] feature per tracklet): refused before any work."""
    def extractor(*args, **kwargs):
        raise AssertionError("the extractor must not run under eval.tta")

    with pytest.raises(ReidError, match="--backend local"):
        evaluate(_astpn(f"data.root={tiny_synth}", "ray.num_workers=0", "eval.tta=astpn-official"),
                 checkpoint=None, extract=extractor, progress=False)
