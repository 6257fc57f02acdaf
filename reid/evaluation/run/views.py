"""The uint8 test-time views of one clip (numpy; no model): what `eval.tta=astpn-official` embeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reid.data.flow import clip_flow, normalize_flow
from reid.data.transforms import AugmentParams, apply_augment


def view_clips(frames: np.ndarray, views: Sequence[AugmentParams], *, flow: bool) -> dict[str, np.ndarray]:
    """One decoded clip uint8 [T, H0, W0, 3] -> `frames` uint8 [V, T, 3, h, w], one clip per view (crop window and
    flip of `views`, e.g. `reid.data.transforms.astpn_official_views`), and with `flow` its Lucas-Kanade flow
    float16 [V, T, 2, h, w] computed on each view's frames, as the training clips compute it after their crop /
    flip (`reid.data.batching.BatchMaker.clip`)."""
    clips = np.stack([apply_augment(frames, p, erase=False, chw=True) for p in views])
    out = {"frames": clips}
    if flow:
        out["flow"] = np.stack([normalize_flow(clip_flow(c, chw=True)) for c in clips]).astype(np.float16)
    return out
