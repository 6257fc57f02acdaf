"""CPU JPEG decoding through torchvision's libjpeg-turbo binding: the same pixels as Pillow, its header walk, its
errors, and the Pillow fallback (DCT-domain downscaling, other formats, a torchvision without the codec)."""

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


@pytest.mark.parametrize("save", [{"quality": 90}, {"quality": 75, "subsampling": 0}, {"progressive": True},
                                  {"quality": 95, "mode": "L"}])
def test_fast_decode_gives_pillows_pixels(save):
    mode = save.pop("mode", "RGB")
    blob = _jpeg(_frame(), mode, **save)
    assert jpeg_decode.available()
    got = jpeg_decode.decode_jpeg_rgb(blob)
    assert got.shape == (64, 32, 3) and got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, _pillow(blob))


@pytest.mark.parametrize("size", [(256, 128), (17, 301), (1, 1)])
def test_header_walk_finds_the_size_pillow_reads(size):
    blob = _jpeg(_frame(*size), progressive=size[0] == 17)
    assert jpeg_decode.jpeg_size(blob) == size
    with Image.open(io.BytesIO(blob)) as im:
        assert im.size == (size[1], size[0])


def test_header_walk_gives_up_on_damage():
    blob = _jpeg(_frame())
    assert jpeg_decode.jpeg_size(blob[:12]) is None  # ends before the SOF
    assert jpeg_decode.jpeg_size(b"\xff\xd8\xff\xda\x00\x08" + bytes(8)) is None  # a scan before any frame header
    assert jpeg_decode.jpeg_size(b"\xff\xd8\x00\x00\x00") is None


def test_draft_only_when_it_shrinks():
    blob = _jpeg(_frame(256, 128))
    assert not jpeg_decode.needs_draft(blob, None)
    assert not jpeg_decode.needs_draft(blob, (256, 128))
    assert not jpeg_decode.needs_draft(blob, (129, 64))  # 1/2 would give 128 rows: too small
    assert jpeg_decode.needs_draft(blob, (128, 64))
    # decode_pil follows it: the reduced scale through Pillow, the full size through the fast path
    assert decode_pil([blob], draft_size=(128, 64)).shape == (1, 128, 64, 3)
    assert decode_pil([blob], draft_size=(129, 64)).shape == (1, 256, 128, 3)


@pytest.mark.parametrize("damage", ["truncated", "not a jpeg", "empty"])
def test_bad_bytes_raise_one_line_errors(damage):
    blob = _jpeg(_frame())
    bad = {"truncated": blob[:len(blob) // 2], "not a jpeg": b"\xff\xd8\xffnot really", "empty": b""}[damage]
    with pytest.raises(jpeg_decode.JpegDecodeError) as info:
        jpeg_decode.decode_jpeg_rgb(bad)
    assert "\n" not in str(info.value) and ".cpp" not in str(info.value)
    with pytest.raises(DecodeError, match="frame 1 is not a readable JPEG"):
        decode_pil([blob, bad])


def test_frame_files_and_png_go_through_the_right_decoder(tmp_path):
    f = _frame()
    (tmp_path / "a.jpg").write_bytes(_jpeg(f))
    Image.fromarray(f).save(tmp_path / "b.png")
    got = decode_pil([tmp_path / "a.jpg", tmp_path / "b.png"])
    np.testing.assert_array_equal(got[0], _pillow(_jpeg(f)))
    np.testing.assert_array_equal(got[1], f)  # PNG is lossless
    with pytest.raises(DecodeError, match="cannot read frame .*missing.jpg"):
        decode_pil([tmp_path / "missing.jpg"])


def test_frames_of_another_size_are_resized_to_the_first(tmp_path):
    out = decode_pil([_jpeg(_frame(64, 32)), _jpeg(_frame(32, 16))])
    assert out.shape == (2, 64, 32, 3)


def test_without_torchvisions_codec_pillow_decodes_everything(monkeypatch):
    blob = _jpeg(_frame())
    want = decode_pil([blob])
    monkeypatch.setattr(jpeg_decode, "available", lambda: False)
    calls = []
    monkeypatch.setattr(jpeg_decode, "decode_jpeg_rgb", lambda b: calls.append(b))
    np.testing.assert_array_equal(decode_pil([blob]), want)
    assert calls == []  # the fast path was not taken


def test_decode_pil_takes_the_fast_path_for_jpeg_only(monkeypatch, tmp_path):
    blob, calls = _jpeg(_frame(256, 128)), []
    real = jpeg_decode.decode_jpeg_rgb
    monkeypatch.setattr(jpeg_decode, "decode_jpeg_rgb", lambda b: calls.append(len(b)) or real(b))
    decode_pil([blob, blob], draft_size=(256, 128))
    assert calls == [len(blob)] * 2
    decode_pil([blob], draft_size=(128, 64))  # DCT-domain downscaling: Pillow
    Image.fromarray(_frame()).save(tmp_path / "b.png")
    decode_pil([tmp_path / "b.png"])
    assert len(calls) == 2
