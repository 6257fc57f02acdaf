"""Decode and augment a training batch on the trainer's device: JPEG bytes (`data.jpeg_decode=trainer`), or frames
the decoding actors only decoded (`frames_hwc`).

With a JPEG store (`reid prepare --pack jpeg`) and `data.jpeg_decode=trainer`, the decoding actors sample a batch
exactly as they do for `frames` (plan row, frame indices, one AugmentParams per clip from the same rng) but only
read the sampled frames' bytes (batching.py, batch contract). The Train worker turns them into `frames` here, on its
device, before normalising (`reid.data.inputs.normalize_inputs`), so a CPU node ships bytes and the GPU decodes:

    jpeg_bytes   uint8 [S]          ->  torchvision.io.decode_jpeg(B*T byte tensors, device)   nvJPEG batched on CUDA,
    jpeg_offsets int64 [B*T + 1]                                                               libjpeg on the CPU
    jpeg_augment int64 [B, 12]      ->  F_b uint8 [T, 3, H0, W0] per clip b, then clip b's AugmentParams p:
                                        frames uint8 [B, T, 3, H, W] on the device

A frames-only training batch of the actors' own decoding arrives resized but not cropped (`frames_hwc` [B, T, rh,
rw, 3] and `frames_augment` [B, 12]); `finish_frames` does steps 2-3 below on the device (`normalize_inputs`).

Geometry (transforms.apply_augment; on an accelerator vectorised over the batch in torch, on the CPU apply_augment
itself, clip by clip):
    1. resize   X = bilinear(F_b, p.resized)  [T, 3, rh, rw], anti-aliased when shrinking (torch's antialias=True
                filter is Pillow's BILINEAR with its support widened by the scale); skipped when F_b has that size.
    2. crop     out[t, c, i, j] = X[t, c, y_i, x_j] where 0 <= y_i < rh and 0 <= x_j < rw, else 0 (zero padding),
                y_i = top - pad + i,  x_j = left - pad + j' with j' = W - 1 - j when p.flip (the crop window
                mirrored: apply_augment crops and then flips), j' = j otherwise;  i < H = out_h, j < W = out_w.
    3. erase    out[:, c, et:et+eh, el:el+ew] = round(255 * IMAGENET_MEAN[c]) when the clip has a box (eh > 0).

The frames differ slightly from the actors' (tests/data/test_device_decode.py measures it): nvJPEG on CUDA vs the
actors' libjpeg-turbo (IDCT and chroma upsampling; on the CPU torchvision's decoder gives the actors' pixels),
Pillow's two 8-bit resize passes vs one float pass here, the actors' DCT-domain downscaling (`Image.draft`'s rule,
when the stored frames are at least twice the resized size), and frames of a clip with another size than its
first (the actors resize them to the first frame's size before the clip's resize; here each frame goes to
`resized` directly).

Only training batches take this path: evaluation and feature extraction decode on the CPU as before.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from reid.data.decode import nearest_readable
from reid.data.transforms import AUGMENT_COLUMNS, IMAGENET_MEAN, apply_augment, augment_params
from reid.errors import ReidError

log = logging.getLogger(__name__)
JPEG_KEYS = ("jpeg_bytes", "jpeg_offsets", "jpeg_augment")
_COL = {name: i for i, name in enumerate(AUGMENT_COLUMNS)}


def carries_jpeg(batch: Mapping[str, Any]) -> bool:
    """Whether the batch holds undecoded JPEG frames (`data.jpeg_decode=trainer`) instead of `frames`."""
    return "jpeg_bytes" in batch


def decode_batch(batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch with its JPEG keys replaced by `frames` uint8 [B, T, 3, H, W] on `device`; other keys as given."""
    out = {k: v for k, v in batch.items() if k not in JPEG_KEYS}
    out["frames"] = decode_frames(batch["jpeg_bytes"], batch["jpeg_offsets"], batch["jpeg_augment"], device)
    return out


def decode_frames(data: Any, offsets: Any, augment: Any, device: torch.device | str) -> torch.Tensor:
    """uint8 [S] bytes, int64 [B*T + 1] offsets, int64 [B, 12] AugmentParams rows -> uint8 [B, T, 3, H, W]."""
    decode_jpeg, rgb = jpeg_decoder()
    device = torch.device(device)
    data = torch.as_tensor(data).cpu()  # decode_jpeg reads its input from host memory (the stream keeps it there)
    bounds = torch.as_tensor(offsets).cpu().tolist()
    rows = torch.as_tensor(augment).cpu().to(torch.int64)  # the sizes are checked on the host
    aug = rows.to(device)
    b, n = aug.shape[0], len(bounds) - 1
    if b == 0 or n % b:
        raise ReidError(f"a JPEG batch of {n} frames cannot be split into {b} clips")
    rh, rw, oh, ow = _geometry(rows)
    blobs = [data[bounds[i]:bounds[i + 1]] for i in range(n)]
    try:
        images = decode_jpeg(blobs, mode=rgb, device=device)
    except RuntimeError:
        images = decode_each(blobs, n // b, device)
    x = resize_frames(images, (rh, rw), device).view(b, n // b, 3, rh, rw)
    return crop_flip_erase(x, aug, (oh, ow))


def jpeg_decoder() -> tuple[Any, Any]:
    """torchvision's `decode_jpeg` and its RGB mode. Deprecated since torchvision 0.29 (TorchCodec supersedes it) and
    to be removed in a later release: a torchvision without it is named in one line, not an ImportError."""
    import torchvision
    from torchvision import io

    if not hasattr(io, "decode_jpeg"):
        raise ReidError(f"data.jpeg_decode=trainer decodes with torchvision.io.decode_jpeg, which torchvision "
                        f"{torchvision.__version__} no longer has: install the torchvision of uv.lock "
                        "(`uv sync --frozen`), or decode in the actors (data.jpeg_decode=actor)")
    return io.decode_jpeg, io.ImageReadMode.RGB


def _geometry(rows: torch.Tensor) -> tuple[int, int, int, int]:
    """(resized_h, resized_w, out_h, out_w) shared by every AugmentParams row of a batch (int64 [B, 12] on the CPU)."""
    sizes = {tuple(r) for r in rows[:, [_COL["resized_h"], _COL["resized_w"], _COL["out_h"], _COL["out_w"]]].tolist()}
    if len(sizes) != 1:
        raise ReidError(f"a training batch mixes resize / crop sizes {sorted(sizes)}; its clips share one geometry")
    return sizes.pop()


def decode_each(blobs: list[torch.Tensor], t: int, device: torch.device) -> list[torch.Tensor]:
    """The fallback when a batch does not decode: frame by frame, each frame that fails (a JPEG damaged past its
    header, which the actors only check for its magic bytes) replaced by the nearest frame of the same clip that
    decodes, earlier first; a clip none of whose T frames decodes is an error. Logged as a warning per batch."""
    decode_jpeg, rgb = jpeg_decoder()
    images: list[torch.Tensor | None] = []
    for blob in blobs:
        try:
            images.append(decode_jpeg(blob, mode=rgb, device=device))
        except RuntimeError:
            images.append(None)
    bad = [i for i, im in enumerate(images) if im is None]
    for start in sorted({i - i % t for i in bad}):
        near = nearest_readable([im is not None for im in images[start:start + t]])
        if near is None:
            raise ReidError(f"none of the {t} JPEG frames of clip {start // t} of the batch decodes on {device}")
        images[start:start + t] = [images[start + j] for j in near]
    log.warning("%d of %d JPEG frames of a batch failed to decode on %s; each replaced by the nearest frame of its "
                "clip that decodes", len(bad), len(blobs), device)
    return images  # type: ignore[return-value]


def resize_frames(images: list[torch.Tensor], size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """uint8 [3, h_i, w_i] each -> uint8 [N, 3, rh, rw]: bilinear, anti-aliased, one call per distinct input size."""
    rh, rw = size
    out = torch.empty((len(images), 3, rh, rw), dtype=torch.uint8, device=device)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, im in enumerate(images):
        groups[(int(im.shape[-2]), int(im.shape[-1]))].append(i)
    for hw, idx in groups.items():
        x = torch.stack([images[i] for i in idx])
        if hw != (rh, rw):
            x = F.interpolate(x.float(), size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
            x = x.round_().clamp_(0, 255).to(torch.uint8)
        out[torch.tensor(idx, device=device)] = x
    return out


def finish_frames(frames_hwc: torch.Tensor, augment: torch.Tensor) -> torch.Tensor:
    """A frames-only training batch as the decoding actors ship it (batching.py, batch contract), augmented on the
    tensor's device: uint8 [B, T, rh, rw, 3] (each clip resized, nothing else), int64 [B, 12] AugmentParams rows
    -> uint8 [B, T, 3, H, W] contiguous, the crop, flip and erasing of `transforms.apply_augment` (steps 2-3)."""
    rows = torch.as_tensor(augment).cpu().to(torch.int64)
    b, _, rh, rw, _ = frames_hwc.shape
    geometry = _geometry(rows)
    if len(rows) != b or geometry[:2] != (rh, rw):
        raise ReidError(f"a batch of {b} clips of {rh}x{rw} frames has augmentation rows of {len(rows)} clips "
                        f"resized to {geometry[0]}x{geometry[1]}")
    oh, ow = geometry[2:]
    return crop_flip_erase(frames_hwc.permute(0, 1, 4, 2, 3), rows.to(frames_hwc.device), (oh, ow))


def crop_flip_erase(x: torch.Tensor, aug: torch.Tensor, out: tuple[int, int]) -> torch.Tensor:
    """Steps 2-3 of the module docstring: x uint8 [B, T, 3, rh, rw] (any strides), aug int64 [B, 12] on x's device
    -> uint8 [B, T, 3, H, W] contiguous. On the CPU clip by clip through `transforms.apply_augment` (slices: 8 ms a
    batch of 16 clips of 8 frames at 256x128 on this project's 2-core machine, where the vectorised gather took
    185 ms); on an accelerator as one gather over the batch."""
    if x.device.type == "cpu":
        return _crop_flip_erase_host(x, aug, out)
    return _crop_flip_erase_gather(x, aug, out)


def _crop_flip_erase_host(x: torch.Tensor, aug: torch.Tensor, out: tuple[int, int]) -> torch.Tensor:
    frames = torch.empty((x.shape[0], x.shape[1], 3, *out), dtype=torch.uint8)
    src, dst = x.numpy(), frames.numpy()  # views: apply_augment writes each clip into its slot of `frames`
    for b, row in enumerate(aug.tolist()):
        apply_augment(src[b].transpose(0, 2, 3, 1), augment_params(row), chw=True, out=dst[b])
    return frames


def _crop_flip_erase_gather(x: torch.Tensor, aug: torch.Tensor, out: tuple[int, int]) -> torch.Tensor:
    b, _, _, rh, rw = x.shape
    oh, ow = out
    dev = x.device
    col = {name: aug[:, i, None] for name, i in _COL.items()}  # each [B, 1]
    i = torch.arange(oh, device=dev)[None]
    j = torch.arange(ow, device=dev)[None]
    ys = col["top"] - col["pad"] + i                                            # [B, H]
    xs = col["left"] - col["pad"] + torch.where(col["flip"] > 0, ow - 1 - j, j)  # [B, W]
    inside = ((ys >= 0) & (ys < rh))[:, :, None] & ((xs >= 0) & (xs < rw))[:, None, :]  # [B, H, W]
    bi = torch.arange(b, device=dev)[:, None, None]
    g = x.permute(0, 3, 4, 1, 2)[bi, ys.clamp(0, rh - 1)[:, :, None], xs.clamp(0, rw - 1)[:, None, :]]  # [B,H,W,T,3]
    frames = g.permute(0, 3, 4, 1, 2) * inside[:, None, None].to(torch.uint8)   # [B, T, 3, H, W]
    et, el, eh, ew = col["erase_top"], col["erase_left"], col["erase_h"], col["erase_w"]
    box = (((i >= et) & (i < et + eh))[:, :, None] & ((j >= el) & (j < el + ew))[:, None, :]) & (eh > 0)[:, :, None]
    fill = torch.tensor([round(255 * m) for m in IMAGENET_MEAN], dtype=torch.uint8, device=dev).view(1, 1, 3, 1, 1)
    return torch.where(box[:, None, None], fill, frames).contiguous()
