"""The image-level source-domain attribute set (the RAP side of adfta's attribute transfer, section 3.2).

Rendered in a different style from the video set, so that there is a domain gap for the MMD term (eq. 5) to close:
a larger default resolution (160x64), indoor backgrounds (gradient walls, tiled floors) instead of streets,
re-shaded garment colours (lighter / darker / more saturated, still inside their named class), a dark outline
around the person, no video nuisances, one image per person.

Written to `<out>/source_domain/`:
    images/000000.png ...
    labels.csv    image, then one 0/1 column per binary attribute (BINARY_GROUPS order)
    groups.json   {group: [binary attribute names]} for the 6 groups of adfta table 1

`binary_attributes` maps a row of the synthetic attribute CSV (column -> class) to the same binary names, so the
labels that attribute transfer predicts for the video set can be scored against the generator's ground truth.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reid.data.synth.identities import BOTTOM_NAMES, SHOE_NAMES, TOP_NAMES, Identity, sample_population
from reid.data.synth.presets import SynthConfig
from reid.data.synth.render import Placement, draw_person
from reid.data.synth.scene import stream
from reid.data.synth.skeleton import body_of, pose_3d, sample_yaw

_UP = {"black": "up-Black", "purple": "up-Purple", "green": "up-Green", "blue": "up-Blue", "gray": "up-Gray",
       "white": "up-White", "yellow": "up-Yellow", "red": "up-Red", "complex": "up-Mixture"}
_LOW = {"white": "low-White", "purple": "low-Purple", "black": "low-Black", "green": "low-Green",
        "dark gray": "low-DarkGray", "pink": "low-Pink", "yellow": "low-Yellow", "blue": "low-Blue",
        "brown": "low-Brown", "complex": "low-Mixture"}
_SHOES = {n: "shoes-" + n.capitalize() for n in SHOE_NAMES}
_AGE = ("AgeLess16", "Age17-30", "Age31-45", "AgeOver45")
BINARY_GROUPS: dict[str, list[str]] = {
    "gender_age": ["Female", *_AGE],
    "head": ["hs-LongHair", "hs-Hat", "hs-Glasses"],
    "upper": ["ub-ShortSleeve", *(_UP[n] for n in TOP_NAMES)],
    "lower": ["lb-LongTrousers", "lb-Shorts", "lb-Skirt", *(_LOW[n] for n in BOTTOM_NAMES)],
    "shoes": [_SHOES[n] for n in SHOE_NAMES],
    "attach": ["attach-Backpack", "attach-SingleShoulderBag", "attach-HandBag"],
}
BINARY_NAMES = [n for g in BINARY_GROUPS.values() for n in g]


def binary_attributes(attrs: Mapping[str, int]) -> dict[str, int]:
    """Synthetic attribute classes (CSV columns: gender, age, hair, hat, glasses, top color / length, bottom
    color / length / type, shoes color, backpack, shoulder bag, hand bag) -> {binary name: 0/1}."""
    out = dict.fromkeys(BINARY_NAMES, 0)
    out["Female"] = int(attrs["gender"] == 1)
    out[_AGE[attrs["age"]]] = 1
    out["hs-LongHair"], out["hs-Hat"], out["hs-Glasses"] = int(attrs["hair"]), int(attrs["hat"]), int(attrs["glasses"])
    out["ub-ShortSleeve"] = int(attrs["top length"])
    out[_UP[TOP_NAMES[attrs["top color"]]]] = 1
    if attrs["bottom type"] == 1:
        out["lb-Skirt"] = 1
    else:
        out["lb-Shorts" if attrs["bottom length"] == 1 else "lb-LongTrousers"] = 1
    out[_LOW[BOTTOM_NAMES[attrs["bottom color"]]]] = 1
    out[_SHOES[SHOE_NAMES[attrs["shoes color"]]]] = 1
    out["attach-Backpack"] = int(attrs["backpack"])
    out["attach-SingleShoulderBag"] = int(attrs["shoulder bag"])
    out["attach-HandBag"] = int(attrs["hand bag"])
    return out


def _indoor(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    top, bottom = rng.integers(120, 250, 3), rng.integers(60, 200, 3)
    ramp = np.linspace(0, 1, h)[:, None, None]
    img = np.broadcast_to((1 - ramp) * top + ramp * bottom, (h, w, 3)).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(img))
    d = ImageDraw.Draw(im)
    floor = int(h * rng.uniform(0.65, 0.8))
    tile = tuple(int(c) for c in rng.integers(90, 230, 3))
    d.rectangle([0, floor, w, h], fill=tile)
    step = max(4, w // int(rng.integers(3, 7)))
    for x in range(-w, 2 * w, step):  # perspective tile joints
        d.line([x, floor, w / 2 + (x - w / 2) * 2.2, h], fill=tuple(c // 2 for c in tile), width=1)
    return im


def _restyle(ident: Identity, rng: np.random.Generator) -> Identity:
    """Another rendering of the same named colours: brighter or darker, more or less saturated."""
    def shade(rgb: tuple) -> tuple:
        a = np.asarray(rgb, dtype=float)
        grey = a.mean()
        a = grey + (a - grey) * rng.uniform(0.9, 1.25)
        return tuple(int(c) for c in np.clip(a * rng.uniform(0.85, 1.12), 0, 255))
    return replace(ident, top_rgb=shade(ident.top_rgb), top_rgb2=shade(ident.top_rgb2),
                   bottom_rgb=shade(ident.bottom_rgb), bottom_rgb2=shade(ident.bottom_rgb2))


def render_source_image(ident: Identity, h: int, w: int, seed: int, index: int) -> np.ndarray:
    """uint8 [h, w, 3]: one person, a random motion / phase / viewpoint, indoor background, outlined."""
    rng = stream(seed, index, "source image")
    k = 2
    ident = _restyle(ident, rng)
    body = body_of(ident.age, ident.gender, ident.build)
    motion, pose = int(rng.integers(5)), int(rng.integers(6))
    joints, extras = pose_3d(body, motion, float(rng.uniform(0, 3)), float(rng.uniform(0, 6.3)))
    canvas = _indoor(rng, h * k, w * k)
    labels = Image.new("L", canvas.size, 0)
    place = Placement(cx=(w - 1) / 2 + rng.uniform(-0.06, 0.06) * w, foot_y=h * rng.uniform(0.9, 0.97),
                      height=h * rng.uniform(0.78, 0.86))
    draw_person(canvas, labels, ident, body, joints, extras, sample_yaw(rng, pose), place, k, motion)
    edges = np.asarray(labels.filter(ImageFilter.FIND_EDGES)) > 0
    arr = np.asarray(canvas).copy()
    arr[edges] = (arr[edges] * 0.25).astype(np.uint8)
    out = np.asarray(Image.fromarray(arr).reduce(k)).astype(np.float32)
    out += rng.normal(0, 2.0, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _work(job: tuple[list[Identity], int, int, int, int, str]) -> list[dict[str, int]]:
    people, start, h, w, seed, root = job
    rows = []
    for i, ident in enumerate(people):
        name = f"images/{start + i:06d}.png"
        Image.fromarray(render_source_image(ident, h, w, seed, start + i)).save(Path(root) / name)
        rows.append({"image": name, **binary_attributes(ident.attributes())})
    return rows


def generate_source_domain(out: Path, cfg: SynthConfig, seed: int, workers: int = 1) -> Path:
    """Write the source-domain set into `out`; returns the labels.csv path."""
    from reid.data.synth.generate import run_jobs

    (out / "images").mkdir(parents=True, exist_ok=True)
    n = cfg.source_images
    people = sample_population(stream(seed, 0, "source identities"), list(range(1, n + 1)))  # independent people
    chunk = 64
    jobs = [(people[s:s + chunk], s, cfg.source_height, cfg.source_width, seed, str(out)) for s in range(0, n, chunk)]
    parts = run_jobs(_work, jobs, workers, f"synth source domain ({chunk} images a chunk)", "chunks")
    rows = [r for part in parts for r in part]
    with open(out / "labels.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=["image", *BINARY_NAMES])
        wr.writeheader()
        wr.writerows(rows)
    (out / "groups.json").write_text(json.dumps(BINARY_GROUPS, indent=2) + "\n")
    return out / "labels.csv"
