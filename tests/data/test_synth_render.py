"""The renderer: skeleton and keypoints, identities, and what each nuisance knob does to the pixels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from reid.data.synth import make_config
from reid.data.synth.identities import ID_COLUMNS, sample_population
from reid.data.synth.plan import plan_dataset
from reid.data.synth.render import Placement, draw_person
from reid.data.synth.scene import render_tracklet
from reid.data.synth.skeleton import MOTION_FREQ, J, body_of, pose_3d

SMALL = dict(ids_train=3, ids_test=2, cameras=2, distractors=0, junk=0, min_len=10, max_len=10, height=64, width=32)


def _draw(yaw: float, motion: int = 2, seed: int = 0):
    ident = sample_population(np.random.default_rng(seed), [1])[0]
    body = body_of(ident.age, ident.gender, ident.build)
    joints, extras = pose_3d(body, motion, 0.3)
    canvas, labels = Image.new("RGB", (128, 256), (128, 128, 128)), Image.new("L", (128, 256), 0)
    kp, vis = draw_person(canvas, labels, ident, body, joints, extras, yaw, Placement(31.5, 122.0, 115.0), 2, motion)
    return kp, vis, np.asarray(labels)


def test_coco18_joint_order_front_and_back():
    kp, vis, _ = _draw(0.0)
    # front view: the person's right side is on the image's left
    assert kp[J["r_shoulder"], 0] < kp[J["l_shoulder"], 0] and kp[J["r_hip"], 0] < kp[J["l_hip"], 0]
    assert kp[J["nose"], 1] < kp[J["neck"], 1] < kp[J["r_hip"], 1] < kp[J["r_knee"], 1] < kp[J["r_ankle"], 1]
    assert kp[J["r_eye"], 1] < kp[J["nose"], 1]
    assert np.allclose(kp[J["neck"]], (kp[J["r_shoulder"]] + kp[J["l_shoulder"]]) / 2, atol=1.5)
    assert vis[[J["nose"], J["r_eye"], J["l_eye"]]].min() == 1.0  # the face is seen from the front
    kp_b, vis_b, _ = _draw(180.0)
    assert kp_b[J["r_shoulder"], 0] > kp_b[J["l_shoulder"], 0]
    assert vis_b[[J["nose"], J["r_eye"], J["l_eye"]]].max() == 0.0  # and not from behind


def test_side_view_hides_the_far_ear_and_arm():
    _, vis, _ = _draw(90.0)  # facing image right: the right side is nearer the camera
    assert vis[J["r_ear"]] == 1.0 and vis[J["l_ear"]] == 0.0
    assert vis[J["l_shoulder"]] == 0.5  # behind the torso
    _, vis, _ = _draw(-90.0)
    assert vis[J["l_ear"]] == 1.0 and vis[J["r_ear"]] == 0.0


def test_gait_is_periodic_and_running_bends_the_knees_more():
    body = body_of(2, 0, 1.0)
    for motion in (0, 1):
        a, _ = pose_3d(body, motion, 0.2)
        b, _ = pose_3d(body, motion, 0.2 + 1.0 / MOTION_FREQ[motion])
        assert np.allclose(a, b, atol=1e-9)

    def knee_range(motion: int) -> float:
        ys = [pose_3d(body, motion, t)[0][J["r_knee"], 2] for t in np.linspace(0, 1.2, 40)]
        return float(np.ptp(ys))
    assert knee_range(1) > knee_range(0) > knee_range(2) >= 0.0
    stand, _ = pose_3d(body, 2, 0.0)
    assert min(stand[J["r_ankle"], 1], stand[J["l_ankle"], 1]) == pytest.approx(0.035)  # feet on the ground


def test_identities_are_unique_and_shared_attributes_makes_look_alikes():
    def agreement(s: float) -> float:
        ids = sample_population(np.random.default_rng(0), list(range(1, 81)), shared_attributes=s)
        assert len({i.signature() for i in ids}) == len(ids)
        a = np.array([[i.attributes()[c] for c in ID_COLUMNS] for i in ids])
        return float(np.mean([(a[i] == a[j]).mean() for i in range(len(a)) for j in range(i)]))
    assert agreement(0.8) > agreement(0.0) + 0.1


@pytest.fixture(scope="module")
def spec_and_cfg():
    cfg = make_config("tiny", **SMALL, occlusion=0.0, lost=0.0, blur=0.0, defocus=0.0, noise=0.0, jitter=0.0)
    spec = plan_dataset(cfg, 3)[0]
    return replace(spec, motion=2, pose=0, yaw=0.0), cfg  # standing, front: the background does not scroll


def test_keypoints_lie_in_the_frame_where_visible(spec_and_cfg):
    spec, cfg = spec_and_cfg
    for motion, yaw in ((0, 90.0), (1, -90.0), (3, 0.0), (4, 135.0)):
        _, kp, _ = render_tracklet(replace(spec, motion=motion, yaw=yaw), replace(cfg, jitter=1.0), 1)
        assert kp.shape == (spec.num_frames, 18, 3) and kp.dtype == np.float32
        v = kp[..., 2] > 0
        assert v.any()
        assert (kp[..., 0][v] >= 0).all() and (kp[..., 0][v] <= cfg.width - 1).all()
        assert (kp[..., 1][v] >= 0).all() and (kp[..., 1][v] <= cfg.height - 1).all()


def test_occlusion_changes_only_the_body_region_of_occluded_frames(spec_and_cfg):
    spec, cfg = spec_and_cfg
    off, kp_off, _ = render_tracklet(spec, cfg, 0)
    on, kp_on, info = render_tracklet(spec, replace(cfg, occlusion=1.0), 0)
    assert info.occluded.any() and not info.occluded.all() and info.flags["occlusion"] == 1
    diff = (on != off).any(-1)
    assert not diff[~info.occluded].any()
    for t in np.nonzero(info.occluded)[0]:
        x0, y0, x1, y1 = info.body_box[t]
        ys, xs = np.nonzero(diff[t])
        assert len(ys) > 20
        assert xs.min() >= np.floor(x0) and xs.max() <= np.ceil(x1) and ys.min() >= np.floor(y0)
    assert np.array_equal(kp_on[..., :2], kp_off[..., :2])
    assert (kp_on[..., 2] <= kp_off[..., 2]).all() and (kp_on[..., 2] < kp_off[..., 2]).any()


def test_lost_frames_show_background(spec_and_cfg):
    spec, cfg = spec_and_cfg
    seen, _, _ = render_tracklet(spec, cfg, 0)
    frames, kp, info = render_tracklet(spec, replace(cfg, lost=1.0), 0)
    lost = info.lost
    assert lost.any() and not lost.all() and info.flags["target-miss"] == 1
    assert np.array_equal(frames[~lost], seen[~lost])
    assert (kp[lost] == 0).all()
    bg = frames[lost]
    assert (bg == bg[0]).all()  # a static camera, no person: the same background in every lost frame
    t = int(np.nonzero(~lost)[0][0])
    person = (seen[t] != bg[0]).any(-1)
    x0, y0, x1, y1 = info.body_box[t]
    ys, xs = np.nonzero(person)
    assert person.sum() > 100  # the person is where the box is, and nowhere else
    assert xs.min() >= np.floor(x0) and xs.max() <= np.ceil(x1) and ys.min() >= np.floor(y0)


def test_junk_tracklets_are_mostly_lost(spec_and_cfg):
    spec, cfg = spec_and_cfg
    _, _, info = render_tracklet(replace(spec, junk=True), cfg, 0)
    assert info.lost.mean() >= 0.5


@pytest.mark.parametrize("knob, value", [("noise", 8.0), ("blur", 1.0), ("defocus", 4.0), ("illumination", 2.0)])
def test_pixel_nuisances_change_pixels_not_keypoints(spec_and_cfg, knob, value):
    spec, cfg = spec_and_cfg
    base, kp0, _ = render_tracklet(spec, cfg, 0)
    other, kp1, _ = render_tracklet(spec, replace(cfg, **{knob: value}), 0)
    assert np.array_equal(kp0, kp1)
    changed = (other != base).any(-1).mean(axis=(1, 2))  # per frame
    assert (changed > 0).all()
    if knob == "noise":  # noise touches (almost) every pixel of every frame
        assert changed.min() > 0.8


def test_jitter_moves_the_box_per_frame(spec_and_cfg):
    spec, cfg = spec_and_cfg
    _, kp0, _ = render_tracklet(spec, cfg, 0)
    _, kp1, info = render_tracklet(spec, replace(cfg, jitter=1.0), 0)
    neck0, neck1 = kp0[:, J["neck"], :2], kp1[:, J["neck"], :2]
    assert np.ptp(neck0[:, 0]) < 0.5  # standing, centred box: the neck stays put
    assert np.ptp(neck1[:, 0]) > 1.0 and np.ptp(info.body_box[:, 3] - info.body_box[:, 1]) > 0.5


def test_viewpoint_decides_what_is_visible():
    from reid.data.synth.render import BACKPACK, HEAD

    ident = replace(sample_population(np.random.default_rng(1), [1])[0], carry=1, hat=False)
    body = body_of(ident.age, ident.gender, ident.build)
    joints, extras = pose_3d(body, 0, 0.1)

    def labels(yaw: float) -> np.ndarray:
        canvas, lab = Image.new("RGB", (128, 256)), Image.new("L", (128, 256), 0)
        draw_person(canvas, lab, ident, body, joints, extras, yaw, Placement(31.5, 122.0, 115.0), 2, 0)
        return np.asarray(lab)
    front, back, side = labels(0.0), labels(180.0), labels(90.0)
    assert (back == BACKPACK).sum() > 5 * max(1, (front == BACKPACK).sum())  # a backpack is seen from behind
    assert 0 < (side == BACKPACK).sum() < (back == BACKPACK).sum()
    assert (front == HEAD).sum() > 0 and (back == HEAD).sum() > 0


def test_cameras_differ_and_have_a_typical_viewpoint():
    from reid.data.synth.plan import camera_pose_weights
    from reid.data.synth.scene import make_camera

    a, b = make_camera(0, 1, 64, 32, 1.0, 1.0), make_camera(0, 2, 64, 32, 1.0, 1.0)
    assert a.background.shape == (64, 512, 3) and not np.array_equal(a.background, b.background)
    assert not np.allclose(a.gain, b.gain)
    assert [int(np.argmax(camera_pose_weights(c))) for c in range(1, 7)] == list(range(6))
    cfg = make_config("demo")
    specs = plan_dataset(cfg, 0)
    for cam in range(1, 5):
        poses = np.bincount([s.pose for s in specs if s.camid == cam], minlength=6)
        assert int(np.argmax(poses)) == cam - 1


def test_cut_out_flag_follows_box_jitter():
    cfg = make_config("tiny", ids_train=6, ids_test=2, distractors=0, junk=0, height=64, width=32)
    specs = plan_dataset(cfg, 0)
    steady = [render_tracklet(s, replace(cfg, jitter=0.0), 0)[2].flags["cut-out"] for s in specs]
    shaky = [render_tracklet(s, replace(cfg, jitter=1.0), 0)[2].flags["cut-out"] for s in specs]
    assert sum(steady) == 0 and sum(shaky) > 0
