"""Phenomenon suites of `reid synth` (issue 17, item 1): each suite's nuisance is present where the strength knob says
and absent in its matched control. Measured on what the generator renders (frames and their keypoints, the rendered
identities), not on the config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reid.data.synth.plan import plan_dataset
from reid.data.synth.presets import SUITES, make_config
from reid.data.synth.scene import render_tracklet
from reid.data.synth.skeleton import J
from reid.errors import ReidError

FACE = [J[k] for k in ("nose", "r_eye", "l_eye", "r_ear", "l_ear")]
BODY = [j for j in range(18) if j not in FACE]
EVERY = 50  # render every 50th tracklet of a suite: ~34 tracklets, a few seconds per strength


def _render(suite: str, strength: float):
    cfg = make_config(suite, strength=strength)
    specs = [s for s in plan_dataset(cfg, 0) if not s.junk][::EVERY]
    return specs, [render_tracklet(s, cfg, 0) for s in specs]


def _hidden_body_frames(kps: np.ndarray) -> np.ndarray:
    """bool [T]: a body joint (face joints excepted) is invisible: under an occluder, lost, or outside the frame."""
    return (kps[:, BODY, 2] == 0).any(axis=1)


def _lost_frames(kps: np.ndarray) -> np.ndarray:
    return (kps[:, :, 2] == 0).all(axis=1)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_suite_has_500_valid_queries_and_a_matched_plan(suite):
    specs = {s: plan_dataset(make_config(suite, strength=s), 0) for s in (0.0, 1.0)}
    query = [t for t in specs[1.0] if t.role == "query"]
    gallery = {(t.pid, t.camid) for t in specs[1.0] if t.role == "gallery"}
    valid = [q for q in query if any(p == q.pid and c != q.camid for p, c in gallery)]
    assert len(valid) >= 500
    # the control shows the same tracklets: ids, cameras, roles and lengths
    key = [(t.tracklet_id, t.role, t.num_frames) for t in specs[0.0]]
    assert key == [(t.tracklet_id, t.role, t.num_frames) for t in specs[1.0]]


def test_quality_suite_occludes_and_loses_frames_only_at_strength():
    specs, control = _render("quality", 0.0)
    _, strong = _render("quality", 1.0)
    hidden0 = np.concatenate([_hidden_body_frames(k) for _, k, _ in control])
    hidden1 = np.concatenate([_hidden_body_frames(k) for _, k, _ in strong])
    lost1 = np.concatenate([_lost_frames(k) for _, k, _ in strong])
    assert hidden0.mean() == 0.0
    assert hidden1.mean() > 0.35 and lost1.mean() > 0.1
    # in the pixels: a frame differs from its control exactly where the render says it is occluded or lost
    for (f0, _, _), (f1, _, info) in zip(control, strong, strict=True):
        diff = np.abs(f1.astype(int) - f0.astype(int)).mean(axis=(1, 2, 3))
        hit = info.lost | info.occluded
        assert (diff[~hit] == 0).all()
        assert (diff[hit] > 1.0).all()
    # every suite tracklet keeps some clean frames (a whole tracklet never disappears)
    assert all((~_hidden_body_frames(k)).any() for _, k, _ in strong)


def test_misalign_suite_moves_and_cuts_the_box_only_at_strength():
    _, control = _render("misalign", 0.0)
    _, strong = _render("misalign", 1.0)

    def hip_wander(kps: np.ndarray) -> float:
        """Std over frames of the hip centre's x, pixels (the box jitter seen in the frame)."""
        return float(kps[:, [J["r_hip"], J["l_hip"]], 0].mean(axis=1).std())

    assert max(hip_wander(k) for _, k, _ in control) < 0.5
    assert np.mean([hip_wander(k) for _, k, _ in strong]) > 2.0
    cut0 = np.concatenate([_hidden_body_frames(k) for _, k, _ in control])
    cut1 = np.concatenate([_hidden_body_frames(k) for _, k, _ in strong])
    partial = np.concatenate([info.partial for _, _, info in strong])
    assert cut0.mean() == 0.0 and cut1.mean() > 0.3
    assert cut1[partial].mean() > 0.9  # a partial-crop frame really loses part of the body
    assert not any(_lost_frames(k).any() for _, k, _ in strong)  # no other nuisance


def test_pose_suite_varies_motion_and_viewpoint_only_at_strength():
    def measure(suite_render) -> tuple[float, float]:
        specs, rendered = suite_render
        raised, width = [], {}
        for spec, (_, k, _) in zip(specs, rendered, strict=True):
            # waving or phoning: a wrist above the neck in a good part of the frames
            wrist_y = k[:, [J["r_wrist"], J["l_wrist"]], 1].min(axis=1)
            raised.append((wrist_y < k[:, J["neck"], 1]).mean() > 0.3)
            height = (k[:, [J["r_ankle"], J["l_ankle"]], 1].mean(axis=1) - k[:, J["neck"], 1]).mean()
            shoulders = np.abs(k[:, J["r_shoulder"], 0] - k[:, J["l_shoulder"], 0]).mean() / height
            width.setdefault(spec.camid, []).append(shoulders)
        # viewpoint spread within a camera: side views show narrow shoulders, front / back views wide ones
        return float(np.mean(raised)), float(np.mean([np.std(v) for v in width.values()]))

    raised0, spread0 = measure(_render("pose", 0.0))
    raised1, spread1 = measure(_render("pose", 1.0))
    assert raised0 == 0.0 and raised1 > 0.05
    assert spread1 > 2 * spread0


def test_attribute_suite_makes_look_alikes_that_differ_in_few_parts():
    def nearest_distances(strength: float) -> np.ndarray:
        cfg = make_config("attributes", strength=strength)
        people = {s.pid: s.identity for s in plan_dataset(cfg, 0) if s.pid > cfg.ids_train}
        a = np.array([list(p.attributes().values()) for p in people.values()])
        d = (a[:, None] != a[None]).sum(-1)
        np.fill_diagonal(d, 99)
        return d.min(axis=1)  # attribute columns in which each test identity differs from its closest other one

    control, strong = nearest_distances(0.0), nearest_distances(1.0)
    assert (strong <= 1).mean() > 0.5 > 0.2 > (control <= 1).mean()


def test_strength_is_validated_and_only_for_suites():
    with pytest.raises(ReidError, match="suite"):
        make_config("demo", strength=0.5)
    with pytest.raises(ReidError, match="strength"):
        make_config("quality", strength=1.5)
    cfg = make_config("quality", strength=0.2, lost=0.0)  # an explicit knob wins over the strength
    assert (cfg.occlusion, cfg.lost, cfg.height, cfg.width) == (0.2, 0.0, 64, 32)


def test_an_existing_suite_at_another_strength_is_an_error(tmp_path):
    from reid.data.synth import ensure_dataset

    out = tmp_path / "suite"
    out.mkdir()
    (out / "manifest.parquet").write_bytes(b"")  # only its presence matters here
    (out / "summary.json").write_text(json.dumps({"preset": "quality", "knobs": {"strength": 0.5}}))
    assert ensure_dataset(out, "quality", strength=0.5) == out / "manifest.parquet"
    with pytest.raises(ReidError, match="strength 0.5, not 'quality' at strength 0"):
        ensure_dataset(out, "quality")  # the control must not silently reuse the strength-0.5 set
    with pytest.raises(ReidError, match="not 'pose'"):
        ensure_dataset(out, "pose", strength=0.5)


def test_training_config_names_a_suite_and_its_strength():
    from reid.config import build_config

    cfg = build_config("baseline", [], ["data.synth_preset=quality", "data.synth_strength=0.5"])
    assert (cfg.data.synth_preset, cfg.data.synth_strength) == ("quality", 0.5)
