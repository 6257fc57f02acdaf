"""Inputs of the adfta attribute-transfer model (section 3.2): a labelled source attribute set and target frames.

Source attribute set (the synthetic generator's `source_domain/`, or any set in the same format):
    DIR/images/*.png          person images
    DIR/labels.csv            header `image,<attr>,<attr>,...`; one row per image, 0/1 per binary attribute;
                              `image` is relative to DIR or to DIR/images
    DIR/groups.json           {group name: [binary attribute names]}, e.g. the 6 groups of the paper's table 1
The attributes the model learns are those named in groups.json, in its order.

Target frames come from a re-ID manifest (frame files or video + frame range), decoded with
`reid.data.decode.read_frames` (decord for videos, time-bounded; libjpeg-turbo / Pillow for frame files), one
tracklet per item, so a data-loader worker opens each video once per item. A tracklet that cannot be decoded is
replaced by another one in training and left unlabelled (-1) in prediction.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from reid.data.decode import DecodeError, Decoder, read_frames
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError

log = logging.getLogger("reid.transfer")
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@dataclass(frozen=True)
class SourceSet:
    root: Path
    images: tuple[Path, ...]
    labels: np.ndarray                     # uint8 [N, L], columns in `names` order
    names: tuple[str, ...]                 # the L binary attributes, grouped as in groups.json
    groups: dict[str, list[str]]


def read_groups_json(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise ReidError(f"attribute groups file not found: expected {path} ({{group: [binary attribute names]}})")
    try:
        groups = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReidError(f"{path} is not valid JSON: {exc}") from None
    if (not isinstance(groups, dict) or not groups
            or not all(isinstance(v, list) and v and all(isinstance(n, str) for n in v) for v in groups.values())):
        raise ReidError(f"{path} must map group names to non-empty lists of attribute names")
    names = [n for v in groups.values() for n in v]
    if len(set(names)) != len(names):
        raise ReidError(f"{path}: an attribute is listed in more than one group")
    return groups


def read_source_set(root: str | Path) -> SourceSet:
    """Parse a source attribute set; a malformed one is a ReidError naming the file and row."""
    root = Path(root)
    if not root.is_dir():
        raise ReidError(f"source attribute set: expected a directory at {root} with labels.csv and groups.json")
    groups = read_groups_json(root / "groups.json")
    names = tuple(n for v in groups.values() for n in v)
    labels_path = root / "labels.csv"
    if not labels_path.is_file():
        raise ReidError(f"source attribute set: expected {labels_path} (header image,<attr>,...)")
    with labels_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [n for n in ("image", *names) if n not in header]
        if missing:
            raise ReidError(f"{labels_path}: columns {missing} are missing (groups.json names them)")
        images, rows = [], []
        for lineno, row in enumerate(reader, start=2):
            try:
                values = [int(row[n]) for n in names]
            except (TypeError, ValueError):
                raise ReidError(f"{labels_path}, line {lineno}: attribute values must be 0 or 1") from None
            if any(v not in (0, 1) for v in values):
                raise ReidError(f"{labels_path}, line {lineno}: attribute values must be 0 or 1")
            rel = row["image"]
            path = root / rel if (root / rel).is_file() else root / "images" / rel
            if not path.is_file():
                raise ReidError(f"{labels_path}, line {lineno}: image '{rel}' not found under {root} or {root}/images")
            images.append(path)
            rows.append(values)
    if not rows:
        raise ReidError(f"{labels_path} has no rows")
    return SourceSet(root, tuple(images), np.asarray(rows, dtype=np.uint8), names, groups)


def to_input(frames: list[np.ndarray], height: int, width: int, flip: bool = False) -> torch.Tensor:
    """uint8 RGB frames [h, w, 3] (any sizes) -> ImageNet-normalised float [k, 3, height, width]."""
    out = []
    for frame in frames:
        x = torch.from_numpy(np.array(frame, dtype=np.uint8)).permute(2, 0, 1).float().unsqueeze(0) / 255.0
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)[0]
        out.append(x.flip(-1) if flip else x)
    return (torch.stack(out) - IMAGENET_MEAN) / IMAGENET_STD


def read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise ReidError(f"cannot read image {path}: {exc}") from None


def evenly_spaced(num_frames: int, k: int) -> list[int]:
    """k frame indices spread over the tracklet (the middle of k equal chunks); all frames when k >= num_frames."""
    if k <= 0 or k >= num_frames:
        return list(range(num_frames))
    return [int((i + 0.5) * num_frames / k) for i in range(k)]


class SourceImages(Dataset):
    """(image [3, H, W], labels float [L]); random horizontal flips when `train`."""

    def __init__(self, source: SourceSet, rows: np.ndarray, height: int, width: int, train: bool) -> None:
        self.source, self.rows, self.height, self.width, self.train = source, rows, height, width, train

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = int(self.rows[i])
        flip = self.train and bool(torch.rand(()) < 0.5)
        image = to_input([read_rgb(self.source.images[row])], self.height, self.width, flip)[0]
        return image, torch.from_numpy(self.source.labels[row].astype(np.float32))


class TargetClips(Dataset):
    """Frames of target tracklets, one tracklet per item.

    train=True: `k` random frames (with replacement when the tracklet is shorter), random flip -> [k, 3, H, W].
    train=False: `k` evenly spaced frames (all when k <= 0) -> (item index, [k', 3, H, W]); [0, 3, H, W] when the
    tracklet cannot be decoded. `decode_timeout` bounds each video decode (None: decode in-process, no bound).
    """

    def __init__(self, manifest: Manifest, records: list[TrackletRecord], k: int, height: int, width: int,
                 train: bool, decode_timeout: float | None = 60.0) -> None:
        self.manifest, self.records, self.k = manifest, records, k
        self.height, self.width, self.train = height, width, train
        self.decode_timeout = decode_timeout
        self._decoder: Decoder | None = None  # one per process, made on first use (never pickled to workers)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_decoder": None}

    def __len__(self) -> int:
        return len(self.records)

    def _read(self, rec: TrackletRecord, idx: list[int]) -> list[np.ndarray]:
        if self._decoder is None:
            self._decoder = Decoder(self.decode_timeout)
        return list(read_frames(self.manifest, rec, np.asarray(idx), self._decoder))

    def __getitem__(self, i: int):
        if not self.train:
            rec = self.records[i]
            try:
                frames = self._read(rec, evenly_spaced(rec.num_frames, self.k))
            except DecodeError as exc:
                log.warning("skipping tracklet %s: %s", rec.tracklet_id, exc)
                return i, torch.zeros(0, 3, self.height, self.width)
            return i, to_input(frames, self.height, self.width)
        for attempt in range(5):
            rec = self.records[i if attempt == 0 else int(torch.randint(len(self.records), ()))]
            try:
                frames = self._read(rec, torch.randint(rec.num_frames, (self.k,)).tolist())
            except DecodeError as exc:
                log.warning("target tracklet %s unreadable, drawing another: %s", rec.tracklet_id, exc)
                continue
            return to_input(frames, self.height, self.width, flip=bool(torch.rand(()) < 0.5))
        raise ReidError("5 target tracklets in a row could not be decoded; is the target dataset readable?")


def cat_clips(items: list[torch.Tensor]) -> torch.Tensor:
    """Collate training clips [k, 3, H, W] into one frame batch [sum k, 3, H, W]."""
    return torch.cat(items)


def first_item(items: list):
    """Collate for batch_size=1 prediction loaders: the item itself."""
    return items[0]
