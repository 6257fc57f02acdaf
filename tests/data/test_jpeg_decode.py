"""CPU JPEG decoding through simplejpeg (libjpeg-turbo): Pillow's pixels, Pillow's DCT-domain downscaling rule,
and Pillow deciding every frame the fast path hands back (damage, CMYK, other formats, no simplejpeg)."""

import io

import numpy as np
import pytest
from PIL import Image

from reid.data import jpeg_decode
from reid.data.decode import DecodeError, decode_pil


def _frame(h: int = 64, w: int = 32, seed: int = 0) -> np.ndarray:
    """A frame with smooth regions and sharp edges (both matter to the IDCT and chroma upsampling)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    f = np.stack([(x * 255 // w), (y * 255 // h), ((x // 4 + y // 4) % 2) * 200], axis=-1)
    return np.clip(f + rng.integers(-20, 20, size=f.shape), 0, 255).astype(np.uint8)


def _jpeg(frame: np.ndarray, mode: str = "RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).convert(mode).save(buf, format="JPEG", **save)
    return buf.getvalue()


def _pillow(blob: bytes) -> np.ndarray:
    """Naive reference: Pillow's decode, converted to RGB."""
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


def _pillow_draft(blob: bytes, draft_size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        im.draft("RGB", (draft_size[1], draft_size[0]))
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("save", [{"quality": 90}, {"quality": 75, "subsampling": 0}, {"progressive": True},
                                  {"quality": 95, "mode": "L"}])
def test_fast_decode_gives_pillows_pixels(save):
    mode = save.pop("mode", "RGB")
    blob = _jpeg(_frame(), mode, **save)
    assert jpeg_decode.available()
    got = jpeg_decode.decode_jpeg_rgb(blob)
    assert got is not None and got.shape == (64, 32, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _pillow(blob))


@pytest.mark.parametrize("stored", [(256, 128), (300, 150), (1080, 540), (97, 51)])
@pytest.mark.parametrize("draft", [(256, 128), (128, 64), (100, 40), (64, 32), (33, 17)])
def test_draft_follows_pillows_scale_and_pixels(stored, draft):
    blob = _jpeg(_frame(*stored))
    want = _pillow_draft(blob, draft)
    s = jpeg_decode.draft_scale(stored, draft)  # ceil(H / s) x ceil(W / s), as Pillow sized it
    assert want.shape[:2] == (-(-stored[0] // s), -(-stored[1] // s))
    got = jpeg_decode.decode_jpeg_rgb(blob, draft)
    assert got is not None
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(decode_pil([blob], draft_size=draft)[0], want)


def test_draft_scale_is_pillows_rule():
    assert jpeg_decode.draft_scale((256, 128), None) == 1
    assert jpeg_decode.draft_scale((256, 128), (256, 128)) == 1
    assert jpeg_decode.draft_scale((64, 32), (256, 128)) == 1  # smaller than asked: full size
    assert jpeg_decode.draft_scale((256, 128), (129, 64)) == 1  # 1/2 would give 128 rows: too small
    assert jpeg_decode.draft_scale((256, 128), (128, 64)) == 2
    assert jpeg_decode.draft_scale((1080, 540), (128, 64)) == 8  # no finer than 1/8
    assert jpeg_decode.draft_scale((1080, 540), (300, 64)) == 2  # the tighter dimension decides


@pytest.mark.parametrize("damage", ["truncated", "extraneous bytes", "not a jpeg", "empty"])
def test_damaged_frames_are_pillows_to_judge(damage):
    blob = _jpeg(_frame(64, 32))
    bad = {"truncated": blob[:len(blob) // 2], "extraneous bytes": blob[:-2] + bytes(40) + blob[-2:],
           "not a jpeg": b"\xff\xd8\xffnot really", "empty": b""}[damage]
    assert jpeg_decode.decode_jpeg_rgb(bad) is None
    try:  # whatever Pillow decides, decode_pil decides the same
        want = _pillow(bad)
    except (OSError, ValueError):
        with pytest.raises(DecodeError, match="frame 1 is not a readable JPEG"):
            decode_pil([blob, bad])
    else:
        np.testing.assert_array_equal(decode_pil([blob, bad])[1], want)


def test_cmyk_goes_to_pillow():
    blob = _jpeg(_frame(), "CMYK", quality=95)
    assert jpeg_decode.decode_jpeg_rgb(blob) is None
    np.testing.assert_array_equal(decode_pil([blob])[0], _pillow(blob))


def test_frame_files_and_png_go_through_the_right_decoder(tmp_path):
    f = _frame()
    (tmp_path / "a.jpg").write_bytes(_jpeg(f))
    Image.fromarray(f).save(tmp_path / "b.png")
    got = decode_pil([tmp_path / "a.jpg", tmp_path / "b.png"])
    np.testing.assert_array_equal(got[0], _pillow(_jpeg(f)))
    np.testing.assert_array_equal(got[1], f)  # PNG is lossless
    with pytest.raises(DecodeError, match="cannot read frame .*missing.jpg"):
        decode_pil([tmp_path / "missing.jpg"])


def test_frames_of_another_size_are_resized_to_the_first():
    out = decode_pil([_jpeg(_frame(64, 32)), _jpeg(_frame(32, 16))])
    assert out.shape == (2, 64, 32, 3)


def test_decode_pil_takes_the_fast_path_for_jpeg_only(monkeypatch, tmp_path):
    blob, calls = _jpeg(_frame(256, 128)), []
    real = jpeg_decode.decode_jpeg_rgb
    monkeypatch.setattr(jpeg_decode, "decode_jpeg_rgb",
                        lambda b, d=None, out=None: calls.append(d) or real(b, d, out))
    decode_pil([blob, blob], draft_size=(128, 64))
    assert calls == [(128, 64)] * 2
    Image.fromarray(_frame()).save(tmp_path / "b.png")
    decode_pil([tmp_path / "b.png"])
    assert len(calls) == 2


def test_without_simplejpeg_pillow_decodes_everything(monkeypatch):
    blob = _jpeg(_frame(256, 128))
    want = decode_pil([blob], draft_size=(128, 64))
    monkeypatch.setattr(jpeg_decode, "available", lambda: False)
    monkeypatch.setattr(jpeg_decode, "decode_jpeg_rgb", lambda *a: pytest.fail("the fast path was taken"))
    np.testing.assert_array_equal(decode_pil([blob], draft_size=(128, 64)), want)


def test_a_missing_simplejpeg_is_said_once_and_pillow_decodes(monkeypatch, caplog):
    blob = _jpeg(_frame())
    monkeypatch.setitem(__import__("sys").modules, "simplejpeg", None)  # import fails
    jpeg_decode._simplejpeg.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="reid.data.jpeg_decode"):
            assert not jpeg_decode.available()
            np.testing.assert_array_equal(decode_pil([blob, blob])[1], _pillow(blob))
        said = [r.getMessage() for r in caplog.records if "simplejpeg is not installed" in r.getMessage()]
        assert len(said) == 1
    finally:
        jpeg_decode._simplejpeg.cache_clear()  # the next caller imports it again (monkeypatch undoes the None)


def test_a_clip_mixing_decoders_and_sizes_comes_out_whole():
    f = _frame()
    frames = [_jpeg(f), _jpeg(f, "CMYK", quality=95), _jpeg(_frame(32, 16)), _jpeg(f)[:200], _jpeg(_frame(seed=1))]
    with pytest.raises(DecodeError, match="frame 3 is not a readable JPEG"):
        decode_pil(frames)
    out = decode_pil(frames[:3] + frames[4:])
    assert out.shape == (4, 64, 32, 3)
    np.testing.assert_array_equal(out[0], _pillow(frames[0]))
    np.testing.assert_array_equal(out[1], _pillow(frames[1]))  # CMYK: Pillow's
    np.testing.assert_array_equal(out[3], _pillow(frames[4]))  # the fast path after the others


def test_frames_decode_straight_into_the_clip_buffer(monkeypatch):
    """Every frame after the first is decoded into its slot of the [N, H, W, 3] result (no copy after decoding);
    the pixels stay Pillow's, and a frame of another size still goes through the resize."""
    blobs = [_jpeg(_frame(64, 32, seed=s)) for s in range(3)]
    seen = []
    real = jpeg_decode.decode_jpeg_rgb
    monkeypatch.setattr(jpeg_decode, "decode_jpeg_rgb", lambda b, d=None, out=None: seen.append(out) or real(b, d, out))
    got = decode_pil(blobs)
    assert seen[0] is None and all(o is not None and np.shares_memory(o, got) for o in seen[1:])
    for blob, frame in zip(blobs, got, strict=True):
        np.testing.assert_array_equal(frame, _pillow(blob))
    small = _jpeg(_frame(32, 16))
    mixed = decode_pil([blobs[0], small])
    expect = np.asarray(Image.fromarray(_pillow(small)).resize((32, 64), Image.BILINEAR))
    np.testing.assert_array_equal(mixed[1], expect)


def test_decode_into_a_buffer_of_the_wrong_shape_returns_a_new_array():
    blob = _jpeg(_frame(64, 32))
    out = np.zeros((64, 32, 3), dtype=np.uint8)
    assert jpeg_decode.decode_jpeg_rgb(blob, out=out) is out
    np.testing.assert_array_equal(out, _pillow(blob))
    wrong = np.zeros((32, 64, 3), dtype=np.uint8)
    got = jpeg_decode.decode_jpeg_rgb(blob, out=wrong)
    assert got is not wrong and not wrong.any()
    np.testing.assert_array_equal(got, _pillow(blob))
