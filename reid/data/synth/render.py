"""Draw one person: depth-sorted body parts, clothes, hair, hat, glasses and carried items (PIL, supersampled).

The caller hands in an RGB canvas `k` times the output size (the background, upsampled by pixel repetition) and the
placement of the person in OUTPUT pixel coordinates (integers are pixel centres, the COCO/OpenPose convention);
`draw_person` paints on it and on a part-label map of the same size, and returns the 2-D joints in output pixels
with a self-visibility per joint: 1 visible, 0.5 hidden behind the person's own body or items, 0 a face joint on
the far side of the head. Box-downsampling the canvas by `k` afterwards gives anti-aliased edges.

Parts are drawn far to near by the depth of their 3-D centre after the viewing rotation (painter's algorithm), so a
backpack is seen from behind and hidden from the front (where only its straps show), the far arm disappears
behind the torso in a side view, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from reid.data.synth.identities import HAIR_COLORS, SHOE_COLORS, Identity
from reid.data.synth.skeleton import Body, J

# Part labels in the label map; a joint is visible where the label is one of its own parts.
TORSO, LOWER, HEAD, NECK, HAIR, SKIRT = 1, 2, 3, 4, 5, 6
LIMB = {("r", "upper"): 10, ("r", "fore"): 11, ("r", "hand"): 12, ("l", "upper"): 13, ("l", "fore"): 14,
        ("l", "hand"): 15, ("r", "thigh"): 16, ("r", "shin"): 17, ("r", "shoe"): 18, ("l", "thigh"): 19,
        ("l", "shin"): 20, ("l", "shoe"): 21}
BACKPACK, BAG, HANDBAG, STRAP = 30, 31, 32, 33
_THIN = {0, STRAP}  # a strap over a joint does not hide it
OWN: dict[int, set[int]] = {
    J["neck"]: {NECK, TORSO, HEAD, HAIR},
    J["r_shoulder"]: {TORSO, 10}, J["r_elbow"]: {10, 11}, J["r_wrist"]: {11, 12},
    J["l_shoulder"]: {TORSO, 13}, J["l_elbow"]: {13, 14}, J["l_wrist"]: {14, 15},
    J["r_hip"]: {TORSO, LOWER, SKIRT, 16}, J["r_knee"]: {16, 17, SKIRT}, J["r_ankle"]: {17, 18, SKIRT},
    J["l_hip"]: {TORSO, LOWER, SKIRT, 19}, J["l_knee"]: {19, 20, SKIRT}, J["l_ankle"]: {20, 21, SKIRT},
}
FACE = (J["nose"], J["r_eye"], J["l_eye"], J["r_ear"], J["l_ear"])


@dataclass(frozen=True)
class Placement:
    """Where the person stands in the output frame: foot point (cx, foot_y) and height in pixels."""

    cx: float
    foot_y: float
    height: float


def _hull(pts: np.ndarray) -> list[tuple[float, float]]:
    """Convex hull (monotone chain) of [N, 2] points, as a polygon."""
    p = sorted(set(map(tuple, np.round(pts, 3))))
    if len(p) < 3:
        return p

    def half(seq: list) -> list:
        out: list = []
        for q in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(p[::-1])
    return lower[:-1] + upper[:-1]


def _box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
    return np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])


class _Painter:
    """Collects parts with a depth, then draws them far to near on the canvas and the label map."""

    def __init__(self, canvas: Image.Image, labels: Image.Image, yaw: float, place: Placement, k: int):
        self.rgb, self.lab = ImageDraw.Draw(canvas), ImageDraw.Draw(labels)
        self.canvas, self.yaw, self.place, self.k = canvas, yaw, place, k
        self.c, self.s = float(np.cos(np.deg2rad(yaw))), float(np.sin(np.deg2rad(yaw)))
        # (depth, label, fill, shape, label shape); fill None = label only, callable = paints itself
        self.parts: list[tuple[float, int, object, tuple | None, tuple | None]] = []
        self.patterns: dict[tuple, Image.Image] = {}

    def view(self, pts: np.ndarray) -> np.ndarray:
        """body coordinates [..., 3] -> [..., 3] (x_ss, y_ss, depth) in supersampled canvas pixels
        (skeleton.project, then the placement; written out because it runs ~50 times a frame)."""
        pts = np.asarray(pts, dtype=float)
        x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
        out = np.empty(pts.shape)
        hk, off = self.place.height * self.k, (self.k - 1) / 2
        out[..., 0] = (self.place.cx * self.k + off) + (self.c * x + self.s * z) * hk
        out[..., 1] = (self.place.foot_y * self.k + off) - y * hk
        out[..., 2] = self.c * z - self.s * x
        return out

    def add(self, depth: float, label: int, fill: object, shape: tuple | None, label_shape: tuple | None = None
            ) -> None:
        self.parts.append((depth, label, fill, shape, label_shape if label_shape is not None else shape))

    def capsule(self, a: np.ndarray, b: np.ndarray, radius: float, fill: object, label: int,
                bias: float = 0.0) -> None:
        va, vb = self.view(np.stack([a, b]))
        r = radius * self.place.height * self.k
        self.add((va[2] + vb[2]) / 2 + bias, label, fill, ("capsule", va[:2], vb[:2], r))

    def solid(self, pts: np.ndarray, fill: object, label: int, bias: float = 0.0) -> None:
        v = self.view(pts)
        self.add(float(v[:, 2].mean()) + bias, label, fill, ("poly", _hull(v[:, :2])))

    def _shape(self, draw: ImageDraw.ImageDraw, shape: tuple, fill: object) -> None:
        if shape[0] == "capsule":
            _, a, b, r = shape
            draw.line([tuple(a), tuple(b)], fill=fill, width=max(1, int(round(2 * r))))
            for c in (a, b):
                draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=fill)
        elif shape[0] == "poly":
            if len(shape[1]) >= 3:
                draw.polygon(shape[1], fill=fill)
        elif shape[0] == "ellipse":
            _, c, rx, ry = shape
            draw.ellipse([c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry], fill=fill)

    def _pattern(self, colors: tuple, vertical: bool) -> Image.Image:
        key = (colors, vertical)
        if key not in self.patterns:
            w, h = self.canvas.size
            period = max(4, int(self.place.height * self.k * 0.06))
            idx = (np.arange(w if vertical else h) // (period // 2)) % 2
            line = np.asarray(colors, dtype=np.uint8)[idx]
            arr = np.broadcast_to(line[None] if vertical else line[:, None], (h, w, 3))
            self.patterns[key] = Image.fromarray(np.ascontiguousarray(arr))
        return self.patterns[key]

    def flush(self) -> None:
        for _, label, fill, shape, label_shape in sorted(self.parts, key=lambda p: p[0]):
            if isinstance(fill, tuple) and len(fill) == 3 and isinstance(fill[0], tuple):  # pattern
                mask = Image.new("L", self.canvas.size, 0)
                self._shape(ImageDraw.Draw(mask), shape, 255)
                self.canvas.paste(self._pattern(fill[:2], fill[2]), (0, 0), mask)
            elif callable(fill):
                fill(self.rgb)
            elif fill is not None:
                self._shape(self.rgb, shape, fill)
            if label and label_shape is not None:
                self._shape(self.lab, label_shape, label)


def _garment_fill(rgb: tuple, rgb2: tuple, complex_: bool, vertical: bool) -> object:
    return (rgb, rgb2, vertical) if complex_ else rgb


def draw_person(canvas: Image.Image, labels: Image.Image, ident: Identity, body: Body, joints: np.ndarray,
                extras: dict[str, np.ndarray], yaw: float, place: Placement, k: int, motion: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Paint one person.

    Args:
        canvas: RGB image, k times the output size; labels: "L" image of the same size (part labels, 0 = none).
        joints: [18, 3] body coordinates (skeleton.pose_3d); yaw: viewing yaw in degrees.
    Returns:
        keypoints float32 [18, 2] in output pixels, self-visibility float32 [18] (1, 0.5 or 0).
    """
    p = _Painter(canvas, labels, yaw, place, k)
    skin = ident.skin
    top = _garment_fill(ident.top_rgb, ident.top_rgb2, ident.top == 8, False)
    bottom = _garment_fill(ident.bottom_rgb, ident.bottom_rgb2, ident.bottom == 9, True)
    shoe = tuple(SHOE_COLORS.values())[ident.shoes]
    trousers, shorts, skirt = ident.lower == 0, ident.lower == 1, ident.lower in (2, 3)
    b = ident.build
    for s in ("r", "l"):
        sh, el, wr = joints[J[s + "_shoulder"]], joints[J[s + "_elbow"]], joints[J[s + "_wrist"]]
        hip, kn, an = joints[J[s + "_hip"]], joints[J[s + "_knee"]], joints[J[s + "_ankle"]]
        p.capsule(hip, kn, 0.047 * b, bottom if trousers else skin, LIMB[(s, "thigh")])
        if shorts:
            p.capsule(hip, hip + 0.6 * (kn - hip), 0.052 * b, bottom, LIMB[(s, "thigh")], bias=1e-3)
        p.capsule(kn, an, 0.036 * b, bottom if trousers else skin, LIMB[(s, "shin")])
        p.capsule(an, extras["toe_" + s], 0.027, shoe, LIMB[(s, "shoe")], bias=1e-3)
        p.capsule(sh, el, 0.033 * b, skin if ident.short_sleeves else top, LIMB[(s, "upper")])
        if ident.short_sleeves:
            p.capsule(sh, sh + 0.55 * (el - sh), 0.038 * b, top, LIMB[(s, "upper")], bias=1e-3)
        p.capsule(el, wr, 0.028 * b, skin if ident.short_sleeves else top, LIMB[(s, "fore")])
        p.capsule(wr, wr + 0.35 * (wr - el), 0.026 * b, skin, LIMB[(s, "hand")], bias=1e-3)

    neck, head = joints[J["neck"]], extras["head"]
    hip_y = (joints[J["r_hip"], 1] + joints[J["l_hip"], 1]) / 2
    sh_y = (joints[J["r_shoulder"], 1] + joints[J["l_shoulder"], 1]) / 2
    lean_z = neck[2]  # the torso leans forward when running
    td = body.torso_d
    torso = np.concatenate([
        _box(-body.shoulder_w - 0.02, body.shoulder_w + 0.02, sh_y + 0.012, sh_y + 0.012, -td + lean_z, td + lean_z),
        _box(-body.hip_w - 0.03, body.hip_w + 0.03, hip_y - 0.03, hip_y - 0.03, -td, td)])
    torso_depth = float(p.view(torso)[:, 2].mean())
    p.solid(torso, top, TORSO)
    p.solid(_box(-body.hip_w - 0.045, body.hip_w + 0.045, hip_y - 0.07, hip_y + 0.01, -td - 0.003, td + 0.003),
            bottom, LOWER, bias=-1e-3)
    if skirt:
        knee_y = (joints[J["r_knee"], 1] + joints[J["l_knee"], 1]) / 2
        hem = knee_y + 0.02 if ident.lower == 2 else 0.1
        pts = np.concatenate([_box(-body.hip_w - 0.05, body.hip_w + 0.05, hip_y + 0.01, hip_y + 0.01, -td - 0.01,
                                   td + 0.01),
                              _box(-body.hip_w - 0.1, body.hip_w + 0.1, hem, hem, -td - 0.06, td + 0.06)])
        legs = [float(p.view(joints[J[j]])[2]) for j in ("r_knee", "l_knee", "r_hip", "l_hip")]
        p.add(max(legs) + 2e-3, SKIRT, bottom, ("poly", _hull(p.view(pts)[:, :2])))
    head_base = head - np.array([0.0, 0.8 * body.head_r, 0.0])
    p.capsule(neck, head_base, 0.028 * b, skin, NECK, bias=torso_depth + 1e-3 - float(p.view(neck)[2]))

    hair_rgb = HAIR_COLORS[ident.hair_color]
    r = body.head_r
    if ident.hair_long:
        back = np.concatenate([_box(-1.05 * r, 1.05 * r, head[1], head[1], -0.045, -0.035),
                               _box(-1.2 * r, 1.2 * r, neck[1] - 0.12, neck[1] - 0.12, -td - 0.01, -td)])
        p.solid(back, hair_rgb, HAIR)
    _add_head(p, ident, head, r, hair_rgb, joints)
    _add_items(p, ident, body, joints, td, hip_y, sh_y, motion)
    p.flush()
    v = p.view(joints)
    kp = (v[:, :2] - (k - 1) / 2) / k
    return kp.astype(np.float32), _self_visibility(labels, v, p.view(head), r)


def _add_head(p: _Painter, ident: Identity, head: np.ndarray, r: float, hair_rgb: tuple, joints: np.ndarray
              ) -> None:
    hv = p.view(head)
    rx, ry = 0.95 * r * p.place.height * p.k, 1.08 * r * p.place.height * p.k
    s, f = np.sin(np.deg2rad(p.yaw)), np.cos(np.deg2rad(p.yaw))
    c = hv[:2]
    eyes = p.view(joints[[J["r_eye"], J["l_eye"], J["r_ear"], J["l_ear"]]])

    def paint(d: ImageDraw.ImageDraw) -> None:
        d.ellipse([c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry], fill=ident.skin)
        hc = (c[0] - s * 0.3 * rx, c[1] - 0.3 * ry)
        d.ellipse([hc[0] - 1.04 * rx, hc[1] - ry, hc[0] + 1.04 * rx, hc[1] + ry], fill=hair_rgb)
        if f > -0.35:
            fc = (c[0] + s * 0.3 * rx, c[1] + 0.22 * ry)
            d.ellipse([fc[0] - 0.8 * rx, fc[1] - 0.8 * ry, fc[0] + 0.8 * rx, fc[1] + 0.8 * ry], fill=ident.skin)
        vis = [e for e in eyes[:2] if e[2] > hv[2] + 0.2 * r]
        w = max(1.0, 0.12 * rx)
        for e in vis:
            d.ellipse([e[0] - w, e[1] - w, e[0] + w, e[1] + w], fill=(30, 25, 25))
        if ident.glasses and vis:
            g = 0.32 * rx
            for e in vis:
                d.rectangle([e[0] - g, e[1] - 0.7 * g, e[0] + g, e[1] + 0.7 * g], outline=(15, 15, 15),
                            width=max(1, int(w)))
            if len(vis) == 2:
                d.line([tuple(vis[0][:2]), tuple(vis[1][:2])], fill=(15, 15, 15), width=max(1, int(w)))
            else:  # a temple arm towards the near ear
                ear = eyes[2] if eyes[2][2] > eyes[3][2] else eyes[3]
                d.line([tuple(vis[0][:2]), tuple(ear[:2])], fill=(15, 15, 15), width=max(1, int(w)))
        if ident.hat:
            d.pieslice([c[0] - 1.1 * rx, c[1] - 1.2 * ry, c[0] + 1.1 * rx, c[1] + 0.5 * ry], 180, 360,
                       fill=ident.hat_rgb)
            y = c[1] - 0.35 * ry
            x0, x1 = c[0] - 1.15 * rx, c[0] + 1.15 * rx
            if abs(s) > 0.3:  # the visor sticks out towards where the person looks
                x0, x1 = (c[0] - 0.9 * rx, c[0] + 1.9 * rx) if s > 0 else (c[0] - 1.9 * rx, c[0] + 0.9 * rx)
            d.rectangle([x0, y - 0.15 * ry, x1, y + 0.12 * ry], fill=ident.hat_rgb)

    p.add(float(hv[2]), HEAD, paint, None, ("ellipse", c, 1.04 * rx, ry))


def _add_items(p: _Painter, ident: Identity, body: Body, joints: np.ndarray, td: float, hip_y: float,
               sh_y: float, motion: int) -> None:
    col = ident.carry_rgb
    if ident.carry == 1:  # backpack: behind the torso, straps over the front of the shoulders
        w = body.shoulder_w * 0.8
        p.solid(_box(-w, w, hip_y + 0.06, sh_y - 0.03, -td - 0.08, -td + 0.004), col, BACKPACK)
        for x in (-0.55 * body.shoulder_w, 0.55 * body.shoulder_w):
            p.capsule(np.array([x, sh_y + 0.01, td + 0.006]), np.array([x, sh_y - 0.17, td + 0.006]), 0.01,
                      col, STRAP)
    elif ident.carry == 2:  # shoulder bag on the left hip, strap across the body from the right shoulder
        x0 = body.hip_w + 0.035
        p.solid(_box(x0, x0 + 0.05, hip_y - 0.08, hip_y + 0.05, -0.06, 0.06), col, BAG)
        for z in (td + 0.006, -td - 0.006):
            p.capsule(np.array([-body.shoulder_w * 0.7, sh_y + 0.01, z]), np.array([x0 + 0.02, hip_y + 0.05, z]),
                      0.009, col, STRAP)
    elif ident.carry == 3:  # handbag hanging from a wrist (the left one if the right arm is busy)
        s = "l" if motion in (3, 4) else "r"
        wr = joints[J[s + "_wrist"]] + 0.35 * (joints[J[s + "_wrist"]] - joints[J[s + "_elbow"]])
        p.solid(_box(wr[0] - 0.02, wr[0] + 0.02, wr[1] - 0.13, wr[1] - 0.05, wr[2] - 0.05, wr[2] + 0.05), col,
                HANDBAG, bias=2e-3)
        p.capsule(wr, wr - np.array([0.0, 0.05, 0.0]), 0.006, col, STRAP, bias=2e-3)


def _self_visibility(labels: Image.Image, v: np.ndarray, head_v: np.ndarray, head_r: float) -> np.ndarray:
    """v: [18, 3] joints in canvas pixels + depth (body heights); head_r in body heights."""
    lab = np.asarray(labels)
    h, w = lab.shape
    vis = np.ones(len(v), dtype=np.float32)
    for j in range(len(v)):
        x, y = int(round(v[j, 0])), int(round(v[j, 1]))
        at = int(lab[y, x]) if 0 <= x < w and 0 <= y < h else 0
        if j in FACE:
            front = v[j, 2] > head_v[2] - 0.25 * head_r  # on the near side of the head
            vis[j] = 1.0 if front and at in (HEAD, HAIR, 0) else (0.5 if front else 0.0)
        elif at not in OWN[j] and at not in _THIN:
            vis[j] = 0.5
    return vis
