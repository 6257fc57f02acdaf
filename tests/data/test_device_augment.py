"""Frames-only training batches augmented on the worker's device (`device_decode.finish_frames`): the CPU path
(`transforms.apply_augment` clip by clip) and the accelerator path (one gather over the batch, run here on CPU
tensors) against a naive per-pixel reading of the augmentation (transforms.py: pad, crop, flip, erase)."""

import numpy as np
import pytest
import torch

from reid.data.device_decode import _crop_flip_erase_gather, finish_frames
from reid.data.transforms import IMAGENET_MEAN, AugmentParams, augment_row
from reid.errors import ReidError

T, RESIZED, OUT, PAD = 3, (24, 14), (20, 12), 4
PARAMS = [  # windows inside the frame, over each border, entirely in the padding; flips; erasing boxes
    AugmentParams(RESIZED, PAD, 0, 0, OUT),
    AugmentParams(RESIZED, PAD, 4, 1, OUT, flip=True),
    AugmentParams(RESIZED, PAD, 12, 6, OUT, erase=(2, 3, 5, 4)),
    AugmentParams(RESIZED, PAD, 7, 0, OUT, flip=True, erase=(0, 8, 20, 4)),
    AugmentParams(RESIZED, 30, 0, 0, OUT, flip=True),
    AugmentParams(RESIZED, PAD, 1, 6, OUT, erase=(19, 11, 1, 1)),
]


def naive(frames: np.ndarray, p: AugmentParams) -> np.ndarray:
    """uint8 [T, rh, rw, 3] -> [T, 3, h, w], pixel by pixel: out(i, j) = frame(top - pad + i, left - pad + j') with
    j' = w - 1 - j for a flipped clip, zero outside the frame; then the erasing box filled with the ImageNet mean."""
    (rh, rw), (oh, ow) = p.resized, p.out
    out = np.zeros((len(frames), 3, oh, ow), dtype=np.uint8)
    for i in range(oh):
        for j in range(ow):
            y, x = p.top - p.pad + i, p.left - p.pad + (ow - 1 - j if p.flip else j)
            if 0 <= y < rh and 0 <= x < rw:
                out[:, :, i, j] = frames[:, y, x, :]
    if p.erase is not None:
        et, el, eh, ew = p.erase
        out[:, :, et:et + eh, el:el + ew] = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)[:, None, None]
    return out


@pytest.fixture
def batch():
    hwc = np.random.default_rng(0).integers(0, 256, (len(PARAMS), T, *RESIZED, 3), dtype=np.uint8)
    rows = np.stack([augment_row(p) for p in PARAMS])
    want = np.stack([naive(f, p) for f, p in zip(hwc, PARAMS, strict=True)])
    return torch.from_numpy(hwc), torch.from_numpy(rows), want


def test_the_cpu_path_is_the_naive_augmentation(batch):
    hwc, rows, want = batch
    got = finish_frames(hwc, rows)
    assert got.dtype == torch.uint8 and got.is_contiguous()
    np.testing.assert_array_equal(got.numpy(), want)


def test_the_accelerator_path_is_the_naive_augmentation(batch):
    hwc, rows, want = batch
    got = _crop_flip_erase_gather(hwc.permute(0, 1, 4, 2, 3), rows, OUT)
    assert got.is_contiguous()
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("broken", ["flip", "top", "erase_h"])
def test_a_row_read_wrongly_fails_the_comparison(batch, broken):
    """The comparison above sees a flip, a crop one row off or an erasing box left out."""
    hwc, rows, want = batch
    col = {"flip": 7, "top": 3, "erase_h": 10}[broken]
    bad = rows.clone()
    bad[:, col] = 1 - bad[:, col] if broken == "flip" else bad[:, col] + 1 if broken == "top" else -1
    assert not np.array_equal(finish_frames(hwc, bad).numpy(), want)


def test_rows_that_do_not_fit_the_frames_are_refused(batch):
    hwc, rows, _ = batch
    with pytest.raises(ReidError, match="augmentation rows of 5 clips"):
        finish_frames(hwc, rows[:5])
    with pytest.raises(ReidError, match="clips of 20x12 frames .* resized to 24x14"):
        finish_frames(hwc[:, :, :20, :12], rows)
    mixed = rows.clone()
    mixed[0, 5] = 16  # another out_h
    with pytest.raises(ReidError, match="mixes resize / crop sizes"):
        finish_frames(hwc, mixed)
