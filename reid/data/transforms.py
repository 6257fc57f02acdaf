"""Clip-consistent augmentation on uint8 clips, and the input normalisations the training worker applies.

Augmentation draws ONE set of parameters per tracklet (`sample_augment`) and applies it to every frame
(`apply_augment`) and to the tracklet's keypoints (`augment_keypoints`), as AP3D's `randomize_parameters()` and
RCN's whole-sequence crop / flip do; torchreid's per-frame independent transforms would jitter the crop from frame to
frame and break the temporal models and the optical flow.

Training: resize to (resize_height, resize_width) -> zero-pad by `pad` -> random crop (height, width) -> horizontal
flip (p = 0.5) -> random erasing (Zhong et al. 2020: area 2-40 %, aspect 0.3-3.3, filled with the ImageNet mean).
Test (`data.augment.test_crop`): `resize` = a plain resize to (height, width); `center` = resize to
(resize_height, resize_width), zero-pad by `pad`, then the CENTRE (height, width) window, i.e. the middle of the
training crops' range, at the training scale (adfta section 4.1: "a single center crop for testing"). A plain resize
would show the test frames at another scale than the training crops (288x144 -> 256x128 is 12.5 % for adfta, 64x48
-> 56x40 14-20 % and an aspect change for the RCN methods).
Test-time augmentation (`eval.tta=astpn-official`): `astpn_official_views` gives the 16 windows of ASTPN's
official test code (8 diagonal offsets x flip) in the same AugmentParams form.

Normalisation runs on the worker's device, in torch: `normalize_imagenet` (RGB, ImageNet mean / std) and
`to_yuv_standardized` (RCN: RGB -> YUV, then each channel of each frame standardised to zero mean, unit std).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from reid.config.schema import DataConfig
from reid.errors import ReidError

if TYPE_CHECKING:  # torch is imported lazily: decoding actors never need it and its import costs seconds
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# BT.601 RGB -> YUV (Torch7 image.rgb2yuv, used by RCN / ASTPN)
RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                       [-0.14713, -0.28886, 0.436],
                       [0.615, -0.51499, -0.10001]], dtype=np.float32)
# COCO-18 left/right joint pairs swapped by a horizontal flip (OpenPose does the same to its labels)
FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))


@dataclass(frozen=True)
class AugmentParams:
    """One tracklet's spatial transform: resize to `resized` (h, w), pad, crop at (top, left) to `out` (h, w)."""

    resized: tuple[int, int]
    pad: int
    top: int
    left: int
    out: tuple[int, int]
    flip: bool = False
    erase: tuple[int, int, int, int] | None = None  # (top, left, height, width) in output pixels


# AugmentParams as one int64 row (batches whose frames the trainer decodes: reid.data.device_decode)
AUGMENT_COLUMNS = ("resized_h", "resized_w", "pad", "top", "left", "out_h", "out_w", "flip",
                   "erase_top", "erase_left", "erase_h", "erase_w")


def augment_row(p: AugmentParams) -> np.ndarray:
    """int64 [len(AUGMENT_COLUMNS)]: the fields of `p` in AUGMENT_COLUMNS order, flip as 0 / 1, no erasing as -1s."""
    return np.array([*p.resized, p.pad, p.top, p.left, *p.out, int(p.flip), *(p.erase or (-1, -1, -1, -1))],
                    dtype=np.int64)


def augment_params(row: Sequence[int]) -> AugmentParams:
    """The AugmentParams of an `augment_row` row (its inverse): erase None where the row has no box (erase_h <= 0)."""
    rh, rw, pad, top, left, oh, ow, flip, et, el, eh, ew = (int(v) for v in row)
    return AugmentParams((rh, rw), pad, top, left, (oh, ow), bool(flip), (et, el, eh, ew) if eh > 0 else None)


def sample_augment(rng: np.random.Generator, data: DataConfig, train: bool) -> AugmentParams:
    """Draw one tracklet's augmentation; at test time (`train=False`) no randomness: a plain resize to
    (height, width), or with `data.augment.test_crop == "center"` the centre crop of the training geometry."""
    out = (data.height, data.width)
    a = data.augment
    if not train and a.test_crop == "resize":
        return AugmentParams(out, 0, 0, 0, out)
    resized = (a.resize_height or data.height, a.resize_width or data.width)
    room_y, room_x = resized[0] + 2 * a.pad - out[0], resized[1] + 2 * a.pad - out[1]
    if room_y < 0 or room_x < 0:
        raise ReidError(f"augment: resized {resized} plus padding {a.pad} is smaller than the crop {out}; "
                        f"set data.augment.resize_height/width >= data.height/width")
    if not train:  # the centre of the padded image = the centre of the resized one (the padding is symmetric)
        return AugmentParams(resized, a.pad, room_y // 2, room_x // 2, out)
    top, left = int(rng.integers(0, room_y + 1)), int(rng.integers(0, room_x + 1))
    flip = bool(a.flip and rng.random() < 0.5)
    erase = None
    if a.random_erasing > 0 and rng.random() < a.random_erasing:
        erase = _erase_box(rng, out)
    return AugmentParams(resized, a.pad, top, left, out, flip, erase)


ASTPN_TTA_SHIFTS = tuple(range(1, 9))  # test.lua: `for shiftx = 1,8`, shifty = shiftx


def astpn_official_views(data: DataConfig) -> list[AugmentParams]:
    """The 16 test-time views of ASTPN's official code (test.lua, `computeCMC_MeanPool_RNN`), as AugmentParams.

    test.lua, per frame u of the 48x64 (W x H) frame: `if doflip == 1 then u = image.hflip(u) end;
    u = image.crop(u, s, s, 40 + s, 56 + s)` for s = 1..8, i.e. FLIP FIRST, then the (h, w) window whose top-left
    corner is (row s, column s) of the (possibly flipped) frame (0-based, as image.crop). `apply_augment` crops
    first and flips after, so the flipped view's window starts at column room_x - s of the unflipped frame:
    flip(F)[s:s+h, s:s+w] = flip(F[s:s+h, room_x-s : room_x-s+w]) with room_x = W - w.
    Geometry: frames resized to (resize_height, resize_width) (the training geometry, 64x48 in the recipe), padded
    by `pad` (0 in the astpn recipes), windows of (height, width) = 56x40. Order: s = 1..8, flipped then plain.
    The per-image mean subtraction (`u = u - torch.mean(u)`) acts on normalised inputs:
    `reid.evaluation.multiview.subtract_image_mean`.
    """
    a = data.augment
    out = (data.height, data.width)
    resized = (a.resize_height or data.height, a.resize_width or data.width)
    room_y, room_x = resized[0] + 2 * a.pad - out[0], resized[1] + 2 * a.pad - out[1]
    need = max(ASTPN_TTA_SHIFTS)
    if room_y < need or room_x < need:
        raise ReidError(f"eval.tta=astpn-official crops {out[0]}x{out[1]} windows at offsets 1..{need} of the "
                        f"{resized[0]}x{resized[1]} frame (pad {a.pad}): it needs {need} px of room in both "
                        f"directions, got {room_y} x {room_x}; set data.augment.resize_height/width")
    return [AugmentParams(resized, a.pad, s, room_x - s if flip else s, out, flip)
            for s in ASTPN_TTA_SHIFTS for flip in (True, False)]


def _erase_box(rng: np.random.Generator, out: tuple[int, int]) -> tuple[int, int, int, int] | None:
    h, w = out
    for _ in range(100):  # Zhong et al.'s rejection loop
        area = rng.uniform(0.02, 0.4) * h * w
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
        eh, ew = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < eh < h and 0 < ew < w:
            return int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1)), eh, ew
    return None


def resize_clip(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of every frame: uint8 [T, H, W, 3] -> [T, h, w, 3]."""
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])


def apply_augment(frames: np.ndarray, p: AugmentParams, *, erase: bool = True, chw: bool = False,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Apply one tracklet's transform to all its frames: uint8 [T, H0, W0, 3] -> uint8 [T, h, w, 3].

    `chw=True` writes [T, 3, h, w] directly (crop, flip and transpose in one copy). `erase=False` leaves random
    erasing to a later `apply_erase` (the optical flow is computed in between). `out`: write into this uint8 array
    of the output shape (a slot of a batch buffer) instead of a new one.
    """
    x = resize_clip(frames, p.resized)
    oh, ow = p.out
    t = x.shape[0]
    shape = (t, 3, oh, ow) if chw else (t, oh, ow, 3)
    if out is None:
        out = np.zeros(shape, dtype=np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise ReidError(f"apply_augment: out has shape {out.shape} {out.dtype}, expected {shape} uint8")
    # the crop window in padded coordinates, intersected with the unpadded image
    y0, x0 = p.top - p.pad, p.left - p.pad
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + oh, x.shape[1]), min(x0 + ow, x.shape[2])
    if sy1 <= sy0 or sx1 <= sx0:  # the window lies in the padding only
        out.fill(0)
        return apply_erase(out, p, chw=chw) if erase else out
    src = x[:, sy0:sy1, sx0:sx1]
    dy0, dy1, dx0, dx1 = sy0 - y0, sy1 - y0, sx0 - x0, sx1 - x0
    if p.flip:  # mirrored content lands in the mirrored columns
        src = src[:, :, ::-1]
        dx0, dx1 = ow - dx1, ow - dx0
    # zero only the padding inside the window: filling the whole output first cost 3 % of a JPEG-store batch
    # in-process and 10 % in a decoding actor, whose fresh batch buffer faults its pages in on first touch
    h_ax = 2 if chw else 1
    band = _span(out, h_ax, dy0, dy1)  # the rows the image reaches
    for view, axis, a, b in ((out, h_ax, 0, dy0), (out, h_ax, dy1, oh), (band, h_ax + 1, 0, dx0),
                             (band, h_ax + 1, dx1, ow)):
        if b > a:
            _span(view, axis, a, b)[...] = 0
    if chw:
        out[:, :, dy0:dy1, dx0:dx1] = src.transpose(0, 3, 1, 2)
    else:
        out[:, dy0:dy1, dx0:dx1] = src
    return apply_erase(out, p, chw=chw) if erase else out


def _span(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """The view x[..., start:stop, ...] along `axis`."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def apply_erase(frames: np.ndarray, p: AugmentParams, *, chw: bool = False) -> np.ndarray:
    """Random erasing of the same box in every frame, in place on [T, h, w, 3] (or [T, 3, h, w] with chw)."""
    if p.erase is not None:
        et, el, eh, ew = p.erase
        fill = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
        if chw:
            frames[:, :, et:et + eh, el:el + ew] = fill[:, None, None]
        else:
            frames[:, et:et + eh, el:el + ew] = fill
    return frames


def augment_keypoints(kps: np.ndarray, in_size: tuple[int, int], p: AugmentParams) -> np.ndarray:
    """Map keypoints through the same transform: float32 [T, 18, 3] (x, y, conf) in frame pixels -> output pixels.

    Pixel centres stay aligned under resizing; a flip mirrors x and swaps the left / right joints.
    """
    out = np.array(kps, dtype=np.float32, copy=True)
    sy, sx = p.resized[0] / in_size[0], p.resized[1] / in_size[1]
    out[..., 0] = (out[..., 0] + 0.5) * sx - 0.5 + p.pad - p.left
    out[..., 1] = (out[..., 1] + 0.5) * sy - 0.5 + p.pad - p.top
    if p.flip:
        out[..., 0] = p.out[1] - 1 - out[..., 0]
        for a, b in FLIP_PAIRS:
            out[:, [a, b]] = out[:, [b, a]]
    return out


def to_chw(frames: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] -> uint8 [..., 3, H, W] (contiguous)."""
    return np.ascontiguousarray(np.moveaxis(frames, -1, -3))


def normalize_imagenet(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [..., 3, H, W] -> float32 (x / 255 - mean) / std on the tensor's device."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(3, 1, 1)
    return (frames.float() / 255.0 - mean) / std


def to_yuv_standardized(frames: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """uint8 RGB [..., 3, H, W] -> float32 YUV, each channel of each frame standardised (RCN's preprocessing).

    Y, U, V = M @ (R, G, B) / 255 with the BT.601 matrix `RGB_TO_YUV`; then per frame and channel
    (c - mean(c)) / (std(c) + eps), std without Bessel's correction.
    """
    import torch

    x = frames.float() / 255.0
    m = torch.as_tensor(RGB_TO_YUV, device=frames.device)
    yuv = torch.einsum("ij,...jhw->...ihw", m, x)
    mean = yuv.mean(dim=(-2, -1), keepdim=True)
    std = yuv.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (yuv - mean) / (std + eps)


def normalize_input(frames: torch.Tensor, kind: str) -> torch.Tensor:
    """Dispatch on MethodSpec.input_norm: 'imagenet' or 'yuv'."""
    if kind == "imagenet":
        return normalize_imagenet(frames)
    if kind == "yuv":
        return to_yuv_standardized(frames)
    raise ReidError(f"unknown input normalisation '{kind}'; expected 'imagenet' or 'yuv'")
