"""The generator's knobs (one typed, validated config), the three size presets and the four phenomenon suites.

Every field of `SynthConfig` is a knob; its `help` metadata is what `reid synth --help` prints, so the CLI documents
every knob by construction. Invalid values raise `ReidError` naming the allowed range.

| preset | train ids | test ids | cameras | tracklets / (id, camera) | distractors | junk | frames | source images |
|---|---|---|---|---|---|---|---|---|
| tiny  | 12  | 8   | 3 | 1     | 4    | 2   | 8-16  | 64 (only with --source-domain) |
| demo  | 60  | 40  | 4 | 1-2   | 30   | 10  | 8-64  | 1000 (always) |
| large | 625 | 635 | 6 | 1-3   | 2000 | 400 | 8-120 | 5000 (always) |

Phenomenon suites (issue 17, item 1): each puts the nuisance one family of methods targets into the data with the
`strength` knob (0..1); `strength=0` is its matched control. All four share one size (`SUITE_SIZE`: 150 train / 300
test ids, 6 cameras, one tracklet per (id, camera), 8-16 frames, 64x32 pixels; 568 valid queries with seed 0) and
one low, constant level of the other nuisances (`SUITE_BASE`), so a suite and its control differ only in the
nuisance. The nuisance knobs never change the plan (who appears where, tracklet lengths, roles), and every nuisance
draws from its own random stream, so the control shows the same people in the same tracklets.

| suite | targets | strength s sets |
|---|---|---|
| quality    | temporal attention (adfta T, posetap TAP, fcnta, astpn ATPN) | occlusion = lost = s (per-tracklet runs) |
| misalign   | posetap AlignNet, astpn spatial pyramid | jitter = s, partial = s (runs of frames cut by the box) |
| attributes | adfta disentangling, asanet ASRE | shared_attributes = 0.9 s (look-alikes differ in few local parts) |
| pose       | asanet PMI | pose_variation = s (non-walking motions and any viewpoint) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from reid.errors import ReidError


def knob(default: Any, help: str, lo: float | None = None, hi: float | None = None, even: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "even": even})


@dataclass(frozen=True)
class SynthConfig:
    # population and splits
    ids_train: int = knob(60, "identities in the training split (pids 1..N)", 2, 100_000)
    ids_test: int = knob(40, "identities in the test split (query + gallery)", 1, 100_000)
    cameras: int = knob(4, "number of cameras; every identity appears in 2..cameras of them", 2, 9)
    tracklets_per_camera: int = knob(2, "max tracklets of one identity in one camera (1..N each)", 1, 20)
    distractors: int = knob(30, "gallery tracklets of people never queried (pid 0)", 0, 1_000_000)
    junk: int = knob(10, "junk gallery tracklets (pid -1): a test person lost in most frames", 0, 1_000_000)
    shared_attributes: float = knob(0.3, "probability that an identity copies each attribute from a look-alike "
                                         "(hard negatives); 0 = independent identities", 0.0, 0.95)
    # frames and video
    min_len: int = knob(8, "shortest tracklet, frames", 4, 2000)
    max_len: int = knob(64, "longest tracklet, frames (lengths are log-uniform in [min_len, max_len])", 4, 2000)
    height: int = knob(128, "frame height in pixels (even)", 32, 1024, even=True)
    width: int = knob(64, "frame width in pixels (even; not 16, 24, 48 or 72, which decord cannot read)", 16,
                      1024, even=True)
    fps: int = knob(25, "frame rate of the videos (sets the gait speed per frame)", 1, 60)
    crf: int = knob(12, "x264 constant rate factor (0 = lossless, 51 = worst)", 0, 51)
    gop: int = knob(8, "keyframe interval in frames (random-access cost vs file size)", 1, 250)
    # nuisances
    occlusion: float = knob(0.2, "probability that a tracklet has an occluder over part of the body for a run "
                                 "of frames", 0.0, 1.0)
    jitter: float = knob(0.3, "strength of the per-frame detection-box jitter (translation and scale); "
                              "0 = a perfectly centred box", 0.0, 1.0)
    lost: float = knob(0.1, "probability that a tracklet has a run of frames where the target is lost "
                            "(the box shows background)", 0.0, 1.0)
    blur: float = knob(0.15, "probability that a tracklet has horizontal motion blur", 0.0, 1.0)
    defocus: float = knob(1.0, "multiplier of each camera's defocus blur (0 = sharp)", 0.0, 4.0)
    noise: float = knob(3.0, "sensor noise, std in grey levels (times a per-camera factor)", 0.0, 64.0)
    illumination: float = knob(1.0, "strength of each camera's illumination and colour cast (0 = neutral)",
                               0.0, 2.0)
    partial: float = knob(0.0, "probability that a tracklet has a run of frames whose box cuts off the head, the "
                               "feet or one side of the person (partial crops)", 0.0, 1.0)
    pose_variation: float = knob(1.0, "probability that a tracklet's motion and viewpoint vary (any of the 5 "
                                      "motions, any viewpoint); otherwise walking, seen from the camera's typical "
                                      "viewpoint", 0.0, 1.0)
    strength: float = knob(0.0, "nuisance strength of a phenomenon suite (suite presets only; 0 = the matched "
                                "control)", 0.0, 1.0)
    # outputs
    frames: bool = knob(False, "also write frames/<tracklet_id>/000000.jpg ...")
    source_domain: bool = knob(False, "also write the image-level source-domain attribute set "
                                      "(source_domain/)")
    source_images: int = knob(1000, "images in the source-domain attribute set", 1, 1_000_000)
    source_height: int = knob(160, "source-domain image height", 32, 1024, even=True)
    source_width: int = knob(64, "source-domain image width", 16, 1024, even=True)

    def validate(self) -> SynthConfig:
        for f in fields(self):
            v, m = getattr(self, f.name), f.metadata
            if f.type in ("bool", bool):
                if not isinstance(v, bool):
                    raise ReidError(f"synth knob {f.name} must be true or false, got {v!r}")
                continue
            want_int = f.type in ("int", int)
            if isinstance(v, bool) or not isinstance(v, int | float) or (want_int and not float(v).is_integer()):
                raise ReidError(f"synth knob {f.name} must be {'an integer' if want_int else 'a number'}, "
                                f"got {v!r}")
            if (m["lo"] is not None and v < m["lo"]) or (m["hi"] is not None and v > m["hi"]):
                raise ReidError(f"synth knob {f.name}={v} is out of range: expected {m['lo']} .. {m['hi']} "
                                f"({m['help']})")
            if m["even"] and int(v) % 2:
                raise ReidError(f"synth knob {f.name}={v} must be even (H.264 frame sizes)")
        if self.min_len > self.max_len:
            raise ReidError(f"synth knobs: min_len={self.min_len} must not exceed max_len={self.max_len}")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(ids_train=12, ids_test=8, cameras=3, tracklets_per_camera=1, distractors=4, junk=2,
                 min_len=8, max_len=16, source_images=64),
    "demo": dict(source_domain=True),
    "large": dict(ids_train=625, ids_test=635, cameras=6, tracklets_per_camera=3, distractors=2000, junk=400,
                  min_len=8, max_len=120, source_domain=True, source_images=5000),
}
SUITE_SIZE: dict[str, Any] = dict(ids_train=150, ids_test=300, cameras=6, tracklets_per_camera=1, distractors=100,
                                  junk=20, min_len=8, max_len=16, height=64, width=32, source_domain=False)
# the other nuisances, low and the same at every strength of every suite
SUITE_BASE: dict[str, Any] = dict(occlusion=0.0, lost=0.0, blur=0.0, jitter=0.0, partial=0.0, pose_variation=0.0,
                                  shared_attributes=0.3, defocus=0.5, noise=3.0, illumination=1.0)
SUITES: dict[str, Callable[[float], dict[str, Any]]] = {
    "quality": lambda s: dict(occlusion=s, lost=s),
    "misalign": lambda s: dict(jitter=s, partial=s),
    "attributes": lambda s: dict(shared_attributes=round(0.9 * s, 6)),
    "pose": lambda s: dict(pose_variation=s),
}
for _name in SUITES:
    PRESETS[_name] = {**SUITE_SIZE, **SUITE_BASE}
KNOB_NAMES = tuple(f.name for f in fields(SynthConfig))


def make_config(preset: str = "demo", **knobs: Any) -> SynthConfig:
    """The preset's config with `knobs` overriding it (None values are ignored), validated."""
    if preset not in PRESETS:
        raise ReidError(f"unknown synth preset '{preset}'; expected one of {sorted(PRESETS)}")
    unknown = sorted(set(knobs) - set(KNOB_NAMES))
    if unknown:
        raise ReidError(f"unknown synth knob(s) {unknown}; known knobs: {', '.join(KNOB_NAMES)}")
    given = {k: v for k, v in knobs.items() if v is not None}
    strength = given.get("strength", 0.0)
    if preset not in SUITES and strength:
        raise ReidError(f"synth knob strength applies to the suite presets ({', '.join(SUITES)}), not '{preset}'")
    if preset in SUITES:
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0.0 <= strength <= 1.0:
            raise ReidError(f"synth knob strength={strength!r} is out of range: expected 0 .. 1")
        # explicit knobs still win over the ones the strength sets
        given = {**SUITES[preset](float(strength)), **given}
    values = {**PRESETS[preset], **given}
    types = {f.name: f.type for f in fields(SynthConfig)}
    for k, v in values.items():  # integral floats from YAML / JSON are fine for int knobs
        if types[k] in ("int", int) and isinstance(v, float) and v.is_integer():
            values[k] = int(v)
    return replace(SynthConfig(), **values).validate()
