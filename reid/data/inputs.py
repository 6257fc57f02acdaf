"""A batch as the model sees it: on the device, frames normalised the way the method asks (`MethodSpec.input_norm`).

Shared by the training loop (`reid.training.worker`) and feature extraction (`reid.evaluation.run.extract`, the Ray
Data model actors of `reid.evaluation.run.chunks`), so neither side imports the other for it. A training batch of
undecoded JPEG frames (`data.jpeg_decode=trainer`) is decoded and augmented on the device first
(`reid.data.device_decode`), one of channels-last frames the actors only decoded (`frames_hwc`) cropped, flipped,
erased and transposed there (`device_decode.finish_frames`), so the training code sees `frames` either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from reid.data.device_decode import carries_jpeg, decode_batch, finish_frames
from reid.data.transforms import normalize_input
from reid.spec import MethodSpec


def normalize_inputs(batch: Mapping[str, Any], spec: MethodSpec, device: torch.device) -> dict[str, torch.Tensor]:
    """Move a batch to the device and turn uint8 frames into the method's input normalisation.

    Args:
        batch: `frames` uint8 [B, T, 3, H, W] and the method's other inputs (numpy arrays or tensors); or, in
            place of `frames`, `frames_hwc` / `frames_augment` (augmented and made channels-first here, on `device`) or
            `jpeg_bytes` / `jpeg_offsets` / `jpeg_augment` (decoded here on `device`); batching.py has the contract.
    Returns:
        the same keys as tensors on `device`: `frames` float32 [B, T, 3, H, W] (ImageNet mean / std, or per-frame
        standardised YUV for "yuv"); `flow`, `pose_maps`, `keypoints`, `pair_same` as float32; the rest as given.
    """
    if carries_jpeg(batch):
        batch = decode_batch(batch, device)
    out = {key: torch.as_tensor(value).to(device, non_blocking=True) for key, value in batch.items()}
    if "frames_hwc" in out:  # decoded channels last in the decoding actors; augmented and transposed here
        out["frames"] = finish_frames(out.pop("frames_hwc"), out.pop("frames_augment"))
    out["frames"] = normalize_input(out["frames"], spec.input_norm)  # an unknown kind is an error, not ImageNet
    for key in ("flow", "pose_maps", "keypoints", "pair_same"):
        if key in out:
            out[key] = out[key].float()
    return out
