"""Articulated 3-D stick figure: walking / running / standing / waving / phoning cycles, COCO-18 joints.

Body coordinates, in units of the person's height (sole = 0, top of head = 1): x lateral (+ = the person's left),
y up, z forward (the direction the person faces). A pose is projected orthographically after a rotation by the
viewing yaw (0 = facing the camera, 180 = seen from behind, +90 = facing image right):

    X = cos(yaw) x + sin(yaw) z,   Y = y,   depth = -sin(yaw) x + cos(yaw) z   (larger depth = nearer the camera)

Joint order (COCO-18 / OpenPose): 0 nose, 1 neck, 2 r-shoulder, 3 r-elbow, 4 r-wrist, 5 l-shoulder, 6 l-elbow,
7 l-wrist, 8 r-hip, 9 r-knee, 10 r-ankle, 11 l-hip, 12 l-knee, 13 l-ankle, 14 r-eye, 15 l-eye, 16 r-ear, 17 l-ear.

Motion classes (the `motion` attribute column; MARS has 5 undocumented classes): 0 walking, 1 running, 2 standing,
3 waving (standing, right arm raised), 4 phoning (walking, right hand at the ear).
Pose classes (the `pose` column, 6 as in MARS): 0 front, 1 back, 2 left (facing image left), 3 right,
4 front-diagonal (+-45 deg), 5 back-diagonal (+-135 deg).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
          "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
J = {name: i for i, name in enumerate(JOINTS)}
MOTIONS = ("walking", "running", "standing", "waving", "phoning")
POSES = ("front", "back", "left", "right", "front-diagonal", "back-diagonal")
POSE_YAW = (0.0, 180.0, -90.0, 90.0, 45.0, 135.0)  # class centre; diagonals get a random sign
MOTION_SPEED = (1.0, 2.1, 0.0, 0.0, 0.9)  # ground speed in body heights per second (walking ~0.8 m/s per m)
MOTION_FREQ = (0.95, 1.45, 0.25, 1.4, 0.9)  # gait (or waving) cycles per second


@dataclass(frozen=True)
class Body:
    """Proportions, in body heights."""

    shoulder_w: float  # half width
    hip_w: float
    torso_d: float  # half depth of the torso box
    head_r: float
    hip_y: float
    neck_y: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float


def body_of(age: int, gender: int, build: float) -> Body:
    """Children have bigger heads and shorter legs relative to their height; women narrower shoulders."""
    head_r = 0.075 if age == 0 else 0.062
    neck_y = 1.0 - 2.25 * head_r
    hip_y = 0.5 if age == 0 else 0.53
    leg = hip_y - 0.045
    return Body(
        shoulder_w=(0.095 if gender else 0.11) * build * (0.9 if age == 0 else 1.0),
        hip_w=(0.085 if gender else 0.075) * build,
        torso_d=0.055 * build,
        head_r=head_r,
        hip_y=hip_y,
        neck_y=neck_y,
        upper_arm=0.17 * (neck_y - hip_y) / 0.33,
        forearm=0.15 * (neck_y - hip_y) / 0.33,
        thigh=leg * 0.5,
        shin=leg * 0.5,
    )


def _limb(side: float, flex: float, abduct: float) -> np.ndarray:
    """Unit direction of a limb hanging down, flexed forward by `flex` and raised sideways by `abduct` (radians)."""
    return np.array([side * np.sin(abduct) * np.cos(flex), -np.cos(abduct) * np.cos(flex), np.sin(flex)])


def pose_3d(body: Body, motion: int, t: float, phase0: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Joints of one frame.

    Args:
        t: time in seconds; phase0: the tracklet's starting phase (radians).
    Returns:
        joints float64 [18, 3] in body coordinates and extra points used for drawing (`toe_r`, `toe_l`, `head`).
    """
    phi = 2 * np.pi * MOTION_FREQ[motion] * t + phase0
    d = np.deg2rad
    s = np.sin(phi)
    lean, flight = 0.0, 0.0
    arm = {}  # side -> (upper flex, upper abduct, fore flex, fore abduct)
    leg = {}  # side -> (hip flex, knee flex)
    if motion in (0, 4):  # walking (phoning walks too)
        for side, sgn in (("r", 1.0), ("l", -1.0)):
            ph = phi if sgn > 0 else phi + np.pi
            leg[side] = (d(24) * np.sin(ph), d(6) + d(48) * max(0.0, np.cos(ph - 0.4)) ** 2)
            a = -d(20) * np.sin(ph)
            arm[side] = (a, d(6), a + d(18), d(6))
    elif motion == 1:  # running
        for side, sgn in (("r", 1.0), ("l", -1.0)):
            ph = phi if sgn > 0 else phi + np.pi
            leg[side] = (d(38) * np.sin(ph), d(25) + d(80) * max(0.0, np.cos(ph - 0.5)) ** 2)
            a = -d(45) * np.sin(ph)
            arm[side] = (a, d(10), a + d(90), d(10))
        lean, flight = d(10), 0.03 * abs(np.sin(phi))
    else:  # standing, waving: a slow weight shift
        for side in ("r", "l"):
            leg[side] = (d(2), d(3))
            arm[side] = (d(3) * s, d(6), d(8) + d(3) * s, d(6))
    if motion == 3:
        wave = d(150) + d(25) * np.sin(2 * np.pi * MOTION_FREQ[3] * t * 2 + phase0)
        arm["r"] = (0.0, d(150), 0.0, wave)
    if motion == 4:
        arm["r"] = (d(40), d(15), d(190), d(20))

    pelvis = np.array([0.0, body.hip_y, 0.0])
    up = np.array([0.0, np.cos(lean), np.sin(lean)])
    neck = pelvis + up * (body.neck_y - body.hip_y)
    joints = np.zeros((18, 3))
    joints[J["neck"]] = neck
    for side, sgn in (("r", -1.0), ("l", 1.0)):
        sh = neck + np.array([sgn * body.shoulder_w, -0.01, 0.0])
        uf, ua, ff, fa = arm[side]
        el = sh + _limb(sgn, uf, ua) * body.upper_arm
        wr = el + _limb(sgn, ff, fa) * body.forearm
        hip = pelvis + np.array([sgn * body.hip_w, 0.0, 0.0])
        hf, kf = leg[side]
        kn = hip + _limb(sgn, hf, 0.0) * body.thigh
        an = kn + _limb(sgn, hf - kf, 0.0) * body.shin
        joints[J[side + "_shoulder"]], joints[J[side + "_elbow"]], joints[J[side + "_wrist"]] = sh, el, wr
        joints[J[side + "_hip"]], joints[J[side + "_knee"]], joints[J[side + "_ankle"]] = hip, kn, an
    # Feet on the ground: the lower ankle rests at ankle height (the gait's bob follows from the leg angles),
    # except in a running flight phase.
    ground = min(joints[J["r_ankle"], 1], joints[J["l_ankle"], 1])
    joints[:, 1] += 0.035 - ground + flight
    head = joints[J["neck"]] + up * (1.25 * body.head_r) + np.array([0.0, 0.0, 0.01])
    r = body.head_r
    joints[J["nose"]] = head + np.array([0.0, -0.15 * r, 0.95 * r])
    joints[J["r_eye"]] = head + np.array([-0.38 * r, 0.18 * r, 0.82 * r])
    joints[J["l_eye"]] = head + np.array([0.38 * r, 0.18 * r, 0.82 * r])
    joints[J["r_ear"]] = head + np.array([-0.95 * r, 0.05 * r, -0.1 * r])
    joints[J["l_ear"]] = head + np.array([0.95 * r, 0.05 * r, -0.1 * r])
    extras = {"head": head}
    for side in ("r", "l"):
        an = joints[J[side + "_ankle"]]
        extras["toe_" + side] = an + np.array([0.0, -0.025, 0.07])
    return joints, extras


def rotation(yaw_deg: float) -> np.ndarray:
    """[3, 3] map from body coordinates to (X right, Y up, depth toward the camera)."""
    a = np.deg2rad(yaw_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def project(points: np.ndarray, yaw_deg: float) -> np.ndarray:
    """points [..., 3] in body coordinates -> [..., 3] = (X, Y, depth) in view coordinates (orthographic)."""
    return points @ rotation(yaw_deg).T


def sample_yaw(rng: np.random.Generator, pose: int) -> float:
    """A yaw for a pose class: the class centre (diagonals with a random side) plus +-10 degrees."""
    yaw = POSE_YAW[pose]
    if pose in (4, 5) and rng.random() < 0.5:
        yaw = -yaw
    return float(yaw + rng.uniform(-10.0, 10.0))
