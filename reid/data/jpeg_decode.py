"""JPEG bytes -> uint8 [H, W, 3] RGB on the CPU, through torchvision's libjpeg-turbo binding.

Pillow and `torchvision.io.decode_jpeg` call the same libjpeg-turbo (integer IDCT, fancy chroma upsampling) and give
the same pixels, but Pillow spends as long again in Python around the decode: its JPEG plugin parses the header in
Python, `convert("RGB")` copies the image and `np.asarray` copies it once more (`Image.tobytes`). Measured on this
project's 2-core development machine, 2026-12-05, 256 frames of the synthetic set at 256x128, quality 90 (8.6 KB):

    Pillow, open + convert + asarray (what the actors did)   325-421 us per frame
    Pillow, without the convert copy                         303 us
    torchvision.io.decode_jpeg (CPU)                         141-149 us, the same pixels (max difference 0)

So JPEG frames (the JPEG store's bytes, JPEG frame files) decode here, and Pillow keeps what this path cannot do:
other formats (PNG frames), and DCT-domain downscaling (`Image.draft`) when the stored frames are at least twice the
size the clip is resized to (`needs_draft`). `decode_jpeg` returns a [3, H, W] view of HWC memory, so
`permute(1, 2, 0)` hands it over without a copy.

torchvision deprecated its image codecs in 0.29 in favour of TorchCodec (they still ship in the pinned 0.29); the
deprecation warning is silenced for this call only by its message, and when a later torchvision drops the function,
`available()` is False and every frame goes through Pillow again (a test checks that fallback).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np

JPEG_MAGIC = b"\xff\xd8\xff"
# start-of-frame markers (baseline, extended, progressive, lossless, with or without arithmetic coding)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class JpegDecodeError(ValueError):
    """Bytes that libjpeg-turbo cannot decode (truncated, damaged, not a JPEG)."""


def is_jpeg(blob: bytes) -> bool:
    return blob[:3] == JPEG_MAGIC


def jpeg_size(blob: bytes) -> tuple[int, int] | None:
    """(height, width) from the JPEG's start-of-frame segment, or None when the header cannot be walked.

    Markers after SOI (FFD8) are FFxx followed by a big-endian length that counts itself; SOFn holds
    precision (1 byte), height (2), width (2)."""
    i, n = 2, len(blob)
    while i + 4 <= n:
        if blob[i] != 0xFF:
            return None
        marker = blob[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(blob[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > n:
                return None
            return int.from_bytes(blob[i + 5:i + 7], "big"), int.from_bytes(blob[i + 7:i + 9], "big")
        if marker == 0xDA or length < 2:  # start of scan before any SOF, or a broken length
            return None
        i += 2 + length
    return None


def needs_draft(blob: bytes, draft_size: tuple[int, int] | None) -> bool:
    """Whether Pillow's DCT-domain downscaling would shrink this JPEG: stored at least twice `draft_size` (h, w)
    in both dimensions (libjpeg scales by 1/2, 1/4, 1/8 only while the result stays at least that large)."""
    if draft_size is None:
        return False
    size = jpeg_size(blob)
    return size is not None and size[0] >= 2 * draft_size[0] and size[1] >= 2 * draft_size[1]


@functools.cache
def _decoder() -> Callable | None:
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # a torchvision without its image codecs (deprecated since 0.29)
        return None
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning)

    def decode(blob: bytes) -> np.ndarray:
        data = torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob else torch.empty(0, dtype=torch.uint8)
        return decode_jpeg(data, mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()

    return decode


def available() -> bool:
    """Whether torchvision's CPU JPEG decoder can be used (else callers decode with Pillow)."""
    return _decoder() is not None


def decode_jpeg_rgb(blob: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 [H, W, 3] RGB (grayscale and CMYK converted); raises JpegDecodeError with libjpeg's
    reason (its message without torchvision's source location)."""
    decode = _decoder()
    if decode is None:
        raise JpegDecodeError("torchvision's JPEG decoder is not available")
    try:
        return decode(blob)
    except (RuntimeError, ValueError) as exc:
        raise JpegDecodeError(str(exc).rsplit(", ", 1)[-1]) from None
