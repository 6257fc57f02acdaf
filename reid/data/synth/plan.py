"""The dataset plan: identities, cameras, tracklet lengths, motions, viewpoints and MARS-style roles.

A pure function of (config, seed) that ignores the nuisance knobs, so a nuisance knob changes pixels only, never
who appears where. `pose_variation` and `shared_attributes` change the tracklets' motion / viewpoint and the
identities' looks, each from a stream of its own, and nothing else. Conventions follow MARS:
- train and test identities are disjoint, pids >= 1 (train 1..N, test N+1..N+M); every identity appears in at
  least two cameras;
- test tracklets: for each test identity, one `query` tracklet per camera for a random subset of its cameras that
  leaves at least one camera out, so every query has a `gallery` tracklet of the same person in another camera
  even when queries are removed from the gallery; all other test tracklets are `gallery`;
- distractors (pid 0): gallery tracklets of people who appear nowhere else; junk (pid -1): gallery tracklets of a
  test person who is lost in most frames;
- tracklet numbers accumulate per pid (MARS `T` numbers), tracklet ids are `<pid4>C<cam>T<tttt>`.
"""

from __future__ import annotations

import numpy as np

from reid.data.synth.identities import sample_population, with_pid
from reid.data.synth.presets import SynthConfig
from reid.data.synth.scene import TrackletSpec, stream
from reid.data.synth.skeleton import sample_yaw

MOTION_P = (0.55, 0.12, 0.18, 0.07, 0.08)  # walking, running, standing, waving, phoning


def pid_str(pid: int) -> str:
    """MARS folder spelling: 0001, 0000 (distractor), 00-1 (junk)."""
    return "00-1" if pid == -1 else f"{pid:04d}"


def camera_pose_weights(camid: int) -> np.ndarray:
    """[6] viewpoint distribution of a camera: its typical viewpoint gets 0.6."""
    w = np.full(6, 0.4 / 5)
    w[(camid - 1) % 6] = 0.6
    return w


def sample_length(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Log-uniform tracklet length (short tracklets are common, as in MARS)."""
    return int(np.clip(round(np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))), lo, hi))


def plan_dataset(cfg: SynthConfig, seed: int) -> list[TrackletSpec]:
    rng = stream(seed, 0, "plan")
    n_tr, n_te = cfg.ids_train, cfg.ids_test
    people = sample_population(stream(seed, 0, "identities"), list(range(1, n_tr + n_te + cfg.distractors + 1)),
                               cfg.shared_attributes)
    specs: list[TrackletSpec] = []
    counters: dict[int, int] = {}

    def add(ident, pid: int, camid: int, role: str, junk: bool = False) -> None:
        counters[pid] = counters.get(pid, 0) + 1
        pose = int(rng.choice(6, p=camera_pose_weights(camid)))
        num_frames = sample_length(rng, cfg.min_len, cfg.max_len)
        motion = int(rng.choice(5, p=MOTION_P))
        yaw = sample_yaw(rng, pose)
        # pose_variation < 1: some tracklets walk, seen from the camera's typical viewpoint. Drawn from a stream of
        # its own after the plan's draws, so the rest of the plan is the same at every pose_variation.
        r_var = stream(seed, len(specs), "pose_variation")
        if r_var.random() >= cfg.pose_variation:
            motion, pose = 0, (camid - 1) % 6
            yaw = sample_yaw(r_var, pose)
        specs.append(TrackletSpec(
            index=len(specs), tracklet_id=f"{pid_str(pid)}C{camid}T{counters[pid]:04d}", identity=ident, pid=pid,
            camid=camid, role=role, tracklet_no=counters[pid], num_frames=num_frames, motion=motion, pose=pose,
            yaw=yaw, junk=junk))

    for ident in people[:n_tr + n_te]:
        n_cams = int(rng.integers(2, cfg.cameras + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(cfg.cameras, size=n_cams, replace=False))
        per_cam = {c: int(rng.integers(1, cfg.tracklets_per_camera + 1)) for c in cams}
        if ident.pid <= n_tr:
            for c in cams:
                for _ in range(per_cam[c]):
                    add(ident, ident.pid, c, "train")
            continue
        n_query = int(rng.integers(1, n_cams))  # 1 .. n_cams - 1: one camera stays gallery-only
        query_cams = set(int(c) for c in rng.choice(cams, size=n_query, replace=False))
        for c in cams:
            q = int(rng.integers(per_cam[c])) if c in query_cams else -1
            for i in range(per_cam[c]):
                add(ident, ident.pid, c, "query" if i == q else "gallery")
    for ident in people[n_tr + n_te:]:
        add(with_pid(ident, 0), 0, int(rng.integers(1, cfg.cameras + 1)), "gallery")
    test_people = people[n_tr:n_tr + n_te]
    for _ in range(cfg.junk):
        ident = test_people[int(rng.integers(len(test_people)))]
        add(with_pid(ident, -1), -1, int(rng.integers(1, cfg.cameras + 1)), "gallery", junk=True)
    return specs
