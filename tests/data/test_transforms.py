import numpy as np
import pytest
import torch
from PIL import Image

from reid.config.schema import DataConfig
from reid.data.transforms import (
    AUGMENT_COLUMNS,
    IMAGENET_MEAN,
    AugmentParams,
    apply_augment,
    augment_keypoints,
    augment_params,
    augment_row,
    normalize_imagenet,
    normalize_input,
    sample_augment,
    to_chw,
    to_yuv_standardized,
)
from reid.errors import ReidError


def clip(t=4, h=20, w=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_crop_and_flip_match_naive_and_are_clip_consistent():
    frames = clip()
    p = AugmentParams(resized=(20, 12), pad=3, top=1, left=5, out=(20, 12), flip=True)
    out = apply_augment(frames, p)
    padded = np.zeros((4, 26, 18, 3), dtype=np.uint8)
    padded[:, 3:23, 3:15] = frames
    expected = padded[:, 1:21, 5:17][:, :, ::-1]
    np.testing.assert_array_equal(out, expected)
    assert out.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("top,left", [(0, 0), (1, 5), (6, 6)])
def test_channels_first_output_is_the_transposed_clip(flip, top, left):
    frames = clip()
    p = AugmentParams(resized=(20, 12), pad=3, top=top, left=left, out=(20, 12), flip=flip, erase=(2, 3, 4, 5))
    np.testing.assert_array_equal(apply_augment(frames, p, chw=True), to_chw(apply_augment(frames, p)))


@pytest.mark.parametrize("chw", [False, True])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("top,left", [(0, 0), (3, 3), (1, 5), (6, 0), (6, 6), (0, 6)])
def test_a_dirty_output_buffer_gets_exactly_the_padded_crop(chw, flip, top, left):
    """The padding inside the window is zeroed, the rest overwritten: a reused slot keeps nothing of before."""
    frames = clip()
    p = AugmentParams(resized=(20, 12), pad=3, top=top, left=left, out=(20, 12), flip=flip)
    padded = np.zeros((4, 26, 18, 3), dtype=np.uint8)
    padded[:, 3:23, 3:15] = frames
    expected = padded[:, top:top + 20, left:left + 12]
    expected = expected[:, :, ::-1] if flip else expected
    dirty = np.full((4, 3, 20, 12) if chw else (4, 20, 12, 3), 255, dtype=np.uint8)
    got = apply_augment(frames, p, chw=chw, out=dirty)
    assert got is dirty
    np.testing.assert_array_equal(got, to_chw(expected) if chw else expected)


@pytest.mark.parametrize("erase", [None, (2, 0, 4, 5)])
@pytest.mark.parametrize("flip", [False, True])
def test_augment_params_read_back_the_row_they_were_written_to(flip, erase):
    p = AugmentParams(resized=(24, 14), pad=3, top=1, left=5, out=(20, 12), flip=flip, erase=erase)
    row = augment_row(p)
    assert row.dtype == np.int64 and row.shape == (len(AUGMENT_COLUMNS),)
    assert augment_params(row) == p and augment_params(row.tolist()) == p


def test_a_window_in_the_padding_only_is_all_zero():
    p = AugmentParams(resized=(4, 4), pad=10, top=0, left=0, out=(4, 4), flip=False)
    dirty = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    assert not apply_augment(clip(t=2, h=4, w=4), p, out=dirty).any()


def test_same_params_for_every_frame():
    rng = np.random.default_rng(1)
    d = DataConfig(height=16, width=8, augment={"pad": 4, "random_erasing": 1.0})
    one = clip(t=1, h=16, w=8)
    frames = np.repeat(one, 5, axis=0)  # identical frames stay identical after a clip-consistent transform
    for _ in range(10):
        out = apply_augment(frames, sample_augment(rng, d, train=True))
        assert all(np.array_equal(out[0], out[t]) for t in range(5))


def test_random_erasing_box_and_fill():
    frames = np.full((2, 16, 8, 3), 7, dtype=np.uint8)
    p = AugmentParams((16, 8), 0, 0, 0, (16, 8), erase=(2, 1, 5, 3))
    out = apply_augment(frames, p)
    fill = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
    assert np.all(out[:, 2:7, 1:4] == fill) and out[:, 0, 0, 0].tolist() == [7, 7]
    assert (out != 7).any(axis=-1).sum() == 2 * 15


def test_test_mode_resize_is_plain_resize():
    d = DataConfig(height=10, width=8, augment={"resize_height": 12, "resize_width": 10, "test_crop": "resize"})
    p = sample_augment(np.random.default_rng(0), d, train=False)
    assert p == AugmentParams((10, 8), 0, 0, 0, (10, 8))
    assert apply_augment(clip(h=20, w=12), p).shape == (4, 10, 8, 3)


def naive_center_crop(frames, resized, out):
    """adfta 4.1 "a single center crop for testing": bilinear resize of each frame to `resized` (h, w), then the
    window of size `out` whose margins differ by at most one pixel (the extra pixel below / right)."""
    (rh, rw), (h, w) = resized, out
    big = np.stack([np.asarray(Image.fromarray(f).resize((rw, rh), Image.BILINEAR)) for f in frames])
    top, left = (rh - h) // 2, (rw - w) // 2
    assert (rh - h - top) - top in (0, 1) and (rw - w - left) - left in (0, 1)
    return big[:, top:top + h, left:left + w]


@pytest.mark.parametrize("resized,pad", [((20, 12), 0), ((19, 11), 0), ((20, 12), 3), ((16, 8), 2)])
def test_test_mode_center_crop_matches_naive(resized, pad):
    d = DataConfig(height=16, width=8, augment={"resize_height": resized[0], "resize_width": resized[1],
                                                "pad": pad, "test_crop": "center", "random_erasing": 1.0})
    frames = clip(h=40, w=24)
    draws = {sample_augment(np.random.default_rng(k), d, train=False) for k in range(5)}
    assert len(draws) == 1  # deterministic: no flip, no erasing, no random offset
    p = draws.pop()
    out = apply_augment(frames, p)
    assert out.shape == (4, 16, 8, 3)
    np.testing.assert_array_equal(out, naive_center_crop(frames, resized, (16, 8)))
    np.testing.assert_array_equal(apply_augment(frames, p, chw=True), to_chw(out))
    if resized != (16, 8):  # the old plain resize to (height, width) is a different picture
        plain = apply_augment(frames, AugmentParams((16, 8), 0, 0, 0, (16, 8)))
        assert not np.array_equal(out, plain)


def test_center_crop_is_the_middle_of_the_training_crops():
    d = DataConfig(height=16, width=8, augment={"resize_height": 20, "resize_width": 12, "pad": 0, "flip": False,
                                                "test_crop": "center"})
    rng = np.random.default_rng(0)
    train = [sample_augment(rng, d, train=True) for _ in range(400)]
    test = sample_augment(rng, d, train=False)
    assert {p.resized for p in train} == {test.resized} == {(20, 12)}  # same scale as training
    assert (min(p.top for p in train) + max(p.top for p in train)) / 2 == test.top == 2
    assert (min(p.left for p in train) + max(p.left for p in train)) / 2 == test.left == 2


def test_center_crop_keypoints_follow_the_frames():
    # a 4 x 4 white block in a 40 x 24 frame, halved to 20 x 12, centre-cropped to 16 x 8: the block's centroid
    # and the keypoint put on it must land on the same output pixel coordinates
    frames = np.zeros((1, 40, 24, 3), dtype=np.uint8)
    frames[0, 16:20, 8:12] = 255
    kps = np.zeros((1, 18, 3), dtype=np.float32)
    kps[0, 2] = (9.5, 17.5, 1)  # (x, y): the block's centre in pixel-centre coordinates
    d = DataConfig(height=16, width=8, augment={"resize_height": 20, "resize_width": 12, "pad": 4,
                                                "test_crop": "center"})
    p = sample_augment(np.random.default_rng(0), d, train=False)
    out = apply_augment(frames, p)[0, :, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0:16, 0:8]
    cy, cx = (out * ys).sum() / out.sum(), (out * xs).sum() / out.sum()
    moved = augment_keypoints(kps, (40, 24), p)
    assert moved[0, 2, 0] == pytest.approx(cx, abs=0.05) and moved[0, 2, 1] == pytest.approx(cy, abs=0.05)
    assert (moved[0, 2, 0], moved[0, 2, 1]) == (2.5, 6.5)  # (9.5 + .5) / 2 - .5 - 2, (17.5 + .5) / 2 - .5 - 2
    plain = augment_keypoints(kps, (40, 24), AugmentParams((16, 8), 0, 0, 0, (16, 8)))
    assert (plain[0, 2, 0], plain[0, 2, 1]) != (2.5, 6.5)  # the old plain resize puts it elsewhere


@pytest.mark.parametrize("recipe,crop", [
    ("adfta", "center"), ("adfta-ilidsvid", "center"), ("adfta-prid2011", "center"), ("adfta-synthetic", "center"),
    ("fcnta", "center"), ("fcnta-prid2011", "center"), ("fcnta-prid2011-legacy", "center"),
    ("fcnta-synthetic", "center"), ("fcnta-ilidsvid-to-prid2011", "center"),
    ("astpn", "center"), ("astpn-prid2011", "center"), ("astpn-prid2011-legacy", "center"),
    ("astpn-mars", "center"), ("astpn-synthetic", "center"), ("astpn-ilidsvid-to-prid2011", "center"),
    ("asanet", "resize"), ("asanet-synthetic", "resize"), ("posetap", "resize"), ("posetap-mars", "resize"),
    ("baseline", "resize"),
])
def test_recipes_test_crop(recipe, crop):
    from reid.config.loader import build_config

    cfg = build_config(recipe.split("-")[0], [recipe], [])
    assert cfg.data.augment.test_crop == crop
    a = cfg.data.augment
    # the crop keeps most of the frame: no recipe may inherit a resize meant for another input size
    assert (a.resize_height or cfg.data.height) <= 1.2 * cfg.data.height
    assert (a.resize_width or cfg.data.width) <= 1.2 * cfg.data.width
    if crop == "resize":  # the papers resize to the network input: no resize_* for a centre crop to differ from
        assert (a.resize_height or cfg.data.height, a.resize_width or cfg.data.width) == (cfg.data.height,
                                                                                          cfg.data.width)


def test_resize_and_crop_from_config():
    d = DataConfig(height=16, width=8, augment={"resize_height": 18, "resize_width": 9, "pad": 0, "flip": False})
    p = sample_augment(np.random.default_rng(0), d, train=True)
    assert p.resized == (18, 9) and 0 <= p.top <= 2 and 0 <= p.left <= 1
    with pytest.raises(ReidError, match="smaller than the crop"):
        sample_augment(np.random.default_rng(0), DataConfig(height=16, width=8, augment={"resize_height": 8,
                                                                                       "pad": 0}), True)


@pytest.mark.parametrize("flip", [False, True])
def test_keypoints_follow_the_frames(flip):
    frames = np.zeros((1, 30, 20, 3), dtype=np.uint8)
    frames[0, 11, 7] = 255  # a dot where the right shoulder is
    kps = np.zeros((1, 18, 3), dtype=np.float32)
    kps[0, 2] = (7, 11, 1)
    kps[0, 5] = (3, 3, 0.5)
    p = AugmentParams(resized=(30, 20), pad=4, top=6, left=1, out=(24, 16), flip=flip)
    out = apply_augment(frames, p)
    moved = augment_keypoints(kps, (30, 20), p)
    j = 5 if flip else 2  # a flip turns the right shoulder into the left one
    y, x = np.argwhere(out[0, :, :, 0] == 255)[0]
    assert (moved[0, j, 0], moved[0, j, 1]) == (x, y) and moved[0, j, 2] == 1
    assert moved[0, 2 if flip else 5, 2] == 0.5


def test_keypoints_scale_with_resize():
    kps = np.array([[[9.5, 19.5, 1.0]] * 18], dtype=np.float32)  # the centre of a 20 x 40 frame
    p = AugmentParams(resized=(10, 5), pad=0, top=0, left=0, out=(10, 5))
    moved = augment_keypoints(kps, (40, 20), p)
    assert moved[0, 0, :2].tolist() == [2.0, 4.5]


def test_imagenet_normalisation():
    x = torch.tensor(clip(t=2)).permute(0, 3, 1, 2)  # [T, 3, H, W]
    y = normalize_imagenet(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert y[1, 2, 3, 4].item() == pytest.approx((x[1, 2, 3, 4].item() / 255 - 0.406) / 0.225, rel=1e-5)
    assert torch.equal(normalize_input(x, "imagenet"), y)


def test_yuv_standardisation_matches_naive():
    frames = to_chw(clip(t=3, h=6, w=5))[None]  # [1, T, 3, H, W]
    got = to_yuv_standardized(torch.from_numpy(frames)).numpy()
    for t in range(3):
        rgb = frames[0, t].astype(np.float64) / 255
        y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        u = -0.14713 * rgb[0] - 0.28886 * rgb[1] + 0.436 * rgb[2]
        v = 0.615 * rgb[0] - 0.51499 * rgb[1] - 0.10001 * rgb[2]
        for c, ch in enumerate((y, u, v)):
            expected = (ch - ch.mean()) / (ch.std() + 1e-5)
            np.testing.assert_allclose(got[0, t, c], expected, atol=1e-4)
    with pytest.raises(ReidError, match="normalisation"):
        normalize_input(torch.from_numpy(frames), "lab")
