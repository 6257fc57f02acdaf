"""JPEG bytes -> uint8 [H, W, 3] RGB on the CPU through simplejpeg, a thin binding of libjpeg-turbo's TurboJPEG API.

Pillow and simplejpeg call the same libjpeg-turbo (integer IDCT, fancy chroma upsampling: the same pixels), but
Pillow spends as long again in Python around the decode: its JPEG plugin parses the header in Python,
`convert("RGB")` copies the image and `np.asarray` copies it once more (`Image.tobytes`). Measured on this project's
2-core development machine, 2026-12-05, on frames of the synthetic set at 256x128, quality 90:

    Pillow, open + convert + asarray (what the decoding actors did)    303-421 us per frame
    simplejpeg.decode_jpeg                                             139-163 us, the same pixels
    torchvision.io.decode_jpeg (CPU)                                   141-149 us, the same pixels, but it imports
                                                                       torch (3 s more actor start-up here) and is
                                                                       deprecated since torchvision 0.29

DCT-domain downscaling keeps Pillow's rule (`Image.draft`): the largest s in {1, 2, 4, 8} with
s <= min(H // h, W // w) for a requested (h, w), output ceil(H / s) x ceil(W / s); libjpeg-turbo's finer N/8 scales
are not used, so the pixels stay those Pillow gave (`draft_scale`).

Pillow stays the reference: a frame that libjpeg-turbo decodes only with a warning (truncated, extraneous bytes) or
in another colour space (CMYK, YCCK) is handed back (`None`) and the caller decodes it with Pillow, which accepts or
rejects it exactly as before. `available()` is False when simplejpeg is not installed (then Pillow decodes all).
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType

import numpy as np

log = logging.getLogger(__name__)
JPEG_MAGIC = b"\xff\xd8\xff"
_FAST_COLORSPACES = {"YCbCr", "Gray"}


def is_jpeg(blob: bytes) -> bool:
    """Whether the bytes start as a JPEG (SOI marker, then another marker)."""
    return blob[:3] == JPEG_MAGIC


@functools.cache
def _simplejpeg() -> ModuleType | None:
    try:
        import simplejpeg
    except ImportError:
        log.warning("simplejpeg is not installed: JPEG frames decode with Pillow, about twice the CPU time per frame "
                    "(install the project's dependencies: uv sync)")
        return None
    return simplejpeg


def available() -> bool:
    """Whether the fast decoder can be used (else callers decode with Pillow)."""
    return _simplejpeg() is not None


def draft_scale(size: tuple[int, int], draft_size: tuple[int, int] | None) -> int:
    """Pillow's DCT scale denominator for an image of `size` (h, w) asked to stay at least `draft_size` (h, w)."""
    if draft_size is None:
        return 1
    ratio = min(size[0] // max(draft_size[0], 1), size[1] // max(draft_size[1], 1))
    return next((s for s in (8, 4, 2) if ratio >= s), 1)


def decode_jpeg_rgb(blob: bytes, draft_size: tuple[int, int] | None = None,
                    out: np.ndarray | None = None) -> np.ndarray | None:
    """JPEG bytes -> uint8 [H', W', 3] RGB, at Pillow's draft scale for `draft_size` (h, w) if given; None when
    this frame is Pillow's to decode (see the module docstring), including any frame libjpeg-turbo complains of.

    `out`: a C-contiguous uint8 [H', W', 3] to decode into (a frame of the caller's clip buffer: no copy after the
    decode); used only when the frame decodes to exactly that shape, else a new array is returned (or None). Its
    content is undefined after a None."""
    sj = _simplejpeg()
    if sj is None:
        return None
    try:
        h, w, colorspace, _ = sj.decode_jpeg_header(blob)
        if colorspace not in _FAST_COLORSPACES:
            return None
        s = draft_scale((h, w), draft_size)
        want = (-(-h // s), -(-w // s))
        into = out is not None and out.shape == (*want, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        got = sj.decode_jpeg(blob, colorspace="RGB", min_height=want[0] if s > 1 else 0,
                             min_width=want[1] if s > 1 else 0, strict=True, buffer=out if into else None)
    except ValueError:  # libjpeg-turbo's errors and warnings (strict)
        return None
    if got.shape[:2] != want:  # a scale Pillow would not pick (tiny images): Pillow decides
        return None
    return out if into else got
