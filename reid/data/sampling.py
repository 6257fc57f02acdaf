"""Frame samplers: which frames of an `n`-frame tracklet make a clip.

Each sampler is a small object (pytorchvideo `ClipSampler` style) called with the tracklet length and an explicit
`numpy.random.Generator`; nothing touches the global RNG. `__call__` returns int64 frame indices [T] (the dense
sampler returns a list of such arrays, one per chunk); `clips` always returns a list, so evaluation code can treat
every sampler alike.

Strategies (see the video re-ID peers survey, section 4):
- restricted random sampling (Li et al., CVPR 2018; STE-NVAN `util/utils.py`): T equal chunks, one random frame per
  chunk in training, the first frame of each chunk at test time; the strip is padded with its last frame up to a
  multiple of T, so a tracklet shorter than T repeats its last frame.
- consecutive: T consecutive frames from a random start (jiyanggao `random`), loop padding for short tracklets.
- evenly spaced frames over the whole tracklet (torchreid `evenly`).
- dense chunks of length L with overlap O (test; jiyanggao `dense`, last chunk loop-padded).
- all frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reid.config.schema import DataConfig
from reid.errors import ReidError


def _check_n(n: int) -> None:
    if n <= 0:
        raise ReidError(f"a tracklet needs at least one frame to sample from, got num_frames={n}")


def loop_pad(indices: np.ndarray, length: int) -> np.ndarray:
    """Repeat `indices` cyclically up to `length` entries (jiyanggao-style loop padding)."""
    if len(indices) >= length:
        return indices[:length]
    reps = math.ceil(length / len(indices))
    return np.tile(indices, reps)[:length]


class FrameSampler:
    """Base class: `__call__(n, rng) -> int64 [T]`; `clips(n, rng) -> list of int64 [T]`."""

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def clips(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        return [self(n, rng)]


@dataclass(frozen=True)
class RestrictedSampler(FrameSampler):
    """Restricted random sampling: T chunks of ceil(n / T) frames (the last padded with the last frame).

    Training draws one frame uniformly inside each chunk; test (`random=False`) takes each chunk's first frame.
    """

    seq_len: int
    random: bool = True

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        _check_n(n)
        interval = math.ceil(n / self.seq_len)
        strip = np.minimum(np.arange(interval * self.seq_len), n - 1)  # pad with the last frame, as STE-NVAN
        chunks = strip.reshape(self.seq_len, interval)
        if not self.random:
            return chunks[:, 0].astype(np.int64)
        pick = rng.integers(0, interval, size=self.seq_len)
        return chunks[np.arange(self.seq_len), pick].astype(np.int64)


@dataclass(frozen=True)
class ConsecutiveSampler(FrameSampler):
    """T consecutive frames from a uniformly random start (`random=False`: from frame 0); short tracklets loop."""

    seq_len: int
    random: bool = True

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        _check_n(n)
        if n < self.seq_len:
            return loop_pad(np.arange(n, dtype=np.int64), self.seq_len)
        start = int(rng.integers(0, n - self.seq_len + 1)) if self.random else 0
        return np.arange(start, start + self.seq_len, dtype=np.int64)


@dataclass(frozen=True)
class EvenlySampler(FrameSampler):
    """T frames evenly spaced over the tracklet, frame floor(i * n / T) for i < T (deterministic)."""

    seq_len: int

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        _check_n(n)
        return (np.arange(self.seq_len, dtype=np.int64) * n) // self.seq_len


@dataclass(frozen=True)
class AllSampler(FrameSampler):
    """Every frame, in order: int64 [n]."""

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        _check_n(n)
        return np.arange(n, dtype=np.int64)


@dataclass(frozen=True)
class DenseSampler(FrameSampler):
    """Chunks of `chunk_len` frames starting every `chunk_len - overlap` frames until the tracklet is covered.

    The last chunk loop-pads its own frames to full length. With `max_chunks`, that many chunks are kept, evenly
    spaced over the list (deterministic, unlike the random window of some peer code, so evaluation is repeatable).
    """

    chunk_len: int
    overlap: int = 0
    max_chunks: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.chunk_len:
            raise ReidError(f"dense sampling needs 0 <= overlap < chunk length, got overlap={self.overlap}, "
                            f"chunk length={self.chunk_len}")

    def __call__(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:  # type: ignore[override]
        _check_n(n)
        stride = self.chunk_len - self.overlap
        chunks = []
        start = 0
        while True:
            frames = np.arange(start, min(start + self.chunk_len, n), dtype=np.int64)
            chunks.append(loop_pad(frames, self.chunk_len))
            if start + self.chunk_len >= n:
                break
            start += stride
        if self.max_chunks is not None and len(chunks) > self.max_chunks:
            keep = np.linspace(0, len(chunks) - 1, self.max_chunks).round().astype(int)
            chunks = [chunks[i] for i in keep]
        return chunks

    def clips(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        return self(n, rng)


def build_sampler(name: str, data: DataConfig, train: bool) -> FrameSampler:
    """Sampler for a config name (`data.train_sampler` / `data.test_sampler`).

    Training samplers draw `data.seq_len` frames; test samplers use `data.test_chunk_len` for `dense` and
    `data.seq_len` otherwise, with randomness switched off.
    """
    t = data.seq_len
    if name == "restricted":
        return RestrictedSampler(t, random=train)
    if name == "consecutive":
        return ConsecutiveSampler(t, random=train)
    if name == "evenly":
        return EvenlySampler(t)
    if name == "all":
        return AllSampler()
    if name == "dense":
        if train:
            raise ReidError("the 'dense' sampler is for evaluation only; choose data.train_sampler from "
                            "restricted, consecutive, evenly, all")
        return DenseSampler(data.test_chunk_len, data.test_chunk_overlap, data.max_test_chunks)
    raise ReidError(f"unknown frame sampler '{name}'; expected one of restricted, consecutive, evenly, dense, all")


def train_sampler(data: DataConfig) -> FrameSampler:
    return build_sampler(data.train_sampler, data, train=True)


def test_sampler(data: DataConfig) -> FrameSampler:
    return build_sampler(data.test_sampler, data, train=False)


test_sampler.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name
