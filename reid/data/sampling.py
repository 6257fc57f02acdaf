"""Frame samplers: which frames of an `n`-frame tracklet make a clip.

Each sampler is a small object (pytorchvideo `ClipSampler` style) called with the tracklet length and an explicit
`numpy.random.Generator`; nothing touches the global RNG. `__call__` returns int64 frame indices [T] (the dense
sampler returns a list of such arrays, one per chunk); `clips` always returns a list, so evaluation code can treat
every sampler alike.

Strategies (see the video re-ID peers survey, section 4):
- restricted random sampling (Li et al., CVPR 2018; adfta section 3.1, "equally divide the sequence into T chunks"):
  n frames split into T chunks of nearly equal length (np.array_split boundaries: sizes differ by at most one),
  one random frame per chunk in training, the first frame of each chunk at test time. Only a tracklet shorter than
  T repeats frames, each about T / n times in order (frame floor(t * n / T) at slot t). STE-NVAN instead pads the
  strip with the last frame to ceil(n / T) * T, which for n = 9, T = 8 puts 4 of 8 slots on the last frame.
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


def restricted_chunks(n: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk t of an n-frame tracklet (n >= T) is frames [starts[t], starts[t] + sizes[t]): int64 [T] each.

    np.array_split boundaries: the first n % T chunks have ceil(n / T) frames, the others floor(n / T).
    """
    sizes = np.full(seq_len, n // seq_len, dtype=np.int64)
    sizes[: n % seq_len] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return starts, sizes


@dataclass(frozen=True)
class RestrictedSampler(FrameSampler):
    """Restricted random sampling: T chunks of nearly equal length (adfta section 3.1, "equally divide the sequence
    into T chunks", one random frame per chunk).

    Training draws one frame uniformly inside each chunk; test (`random=False`) takes each chunk's first frame.
    A tracklet shorter than T (n < T) has no T non-empty chunks: slot t takes frame floor(t * n / T), so every
    frame appears floor(T / n) or ceil(T / n) times, in order, in training and test alike.
    """

    seq_len: int
    random: bool = True

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        _check_n(n)
        t = self.seq_len
        if n < t:  # evenly repeated frames, not last-frame padding
            return (np.arange(t, dtype=np.int64) * n) // t
        starts, sizes = restricted_chunks(n, t)
        if not self.random:
            return starts
        return starts + rng.integers(0, sizes)  # one uniform draw per chunk, in [0, size_t)


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
