import math

import numpy as np
import pytest

from reid.config.schema import DataConfig
from reid.data.sampling import (
    AllSampler,
    ConsecutiveSampler,
    DenseSampler,
    EvenlySampler,
    RestrictedSampler,
    build_sampler,
)
from reid.errors import ReidError


def rng(seed=0):
    return np.random.default_rng(seed)


def naive_restricted_chunks(n, t):
    """adfta section 3.1: "equally divide the sequence into T chunks", written out by hand: the n frames are dealt
    into T consecutive chunks whose lengths differ by at most one (the n % T longer chunks first)."""
    chunks, start = [], 0
    for k in range(t):
        size = n // t + (1 if k < n % t else 0)
        chunks.append(list(range(start, start + size)))
        start += size
    assert start == n
    return chunks


def naive_short_repeat(n, t):
    """n < T: each frame in order, repeated evenly (slot k shows frame floor(k * n / T))."""
    return [k * n // t for k in range(t)]


def old_padding_sampler(n, t):
    """The replaced behaviour (STE-NVAN): ceil(n / T)-frame chunks, strip padded with the last frame."""
    interval = math.ceil(n / t)
    strip = list(range(n)) + [n - 1] * (interval * t - n)
    return [strip[s * interval] for s in range(t)]


@pytest.mark.parametrize("n", [8, 9, 15, 20, 33, 100])
@pytest.mark.parametrize("t", [4, 8])
def test_restricted_one_frame_per_equal_chunk(n, t):
    chunks = naive_restricted_chunks(n, t)
    s = RestrictedSampler(t)
    for seed in range(5):
        idx = s(n, rng(seed))
        assert idx.dtype == np.int64 and idx.shape == (t,)
        assert all(int(i) in chunk for i, chunk in zip(idx, chunks, strict=True))
    test = RestrictedSampler(t, random=False)(n, rng())
    assert test.dtype == np.int64 and test.tolist() == [c[0] for c in chunks]


def test_restricted_nine_frames_eight_slots_is_not_last_frame_padding():
    # the example: the old sampler read [0, 2, 4, 6, 8, 8, 8, 8], half the clip on the last frame
    assert old_padding_sampler(9, 8) == [0, 2, 4, 6, 8, 8, 8, 8]
    test = RestrictedSampler(8, random=False)(9, rng()).tolist()
    assert test == [0, 2, 3, 4, 5, 6, 7, 8] != old_padding_sampler(9, 8)
    for seed in range(50):  # no frame twice, and chunk 0 = frames {0, 1}, chunks 1..7 one frame each
        idx = RestrictedSampler(8)(9, rng(seed)).tolist()
        assert len(set(idx)) == 8 and idx[0] in (0, 1) and idx[1:] == [2, 3, 4, 5, 6, 7, 8]


def test_restricted_draws_uniformly_inside_each_chunk():
    n, t, draws = 21, 4, 4000  # chunks of 6, 5, 5, 5 frames
    chunks = naive_restricted_chunks(n, t)
    idx = np.stack([RestrictedSampler(t)(n, rng(k)) for k in range(draws)])  # [draws, T]
    for k, chunk in enumerate(chunks):
        freq = np.bincount(idx[:, k], minlength=n)[chunk] / draws
        assert set(np.unique(idx[:, k]).tolist()) == set(chunk)
        np.testing.assert_allclose(freq, 1 / len(chunk), atol=0.035)


@pytest.mark.parametrize("n,t", [(1, 8), (3, 6), (3, 8), (5, 8), (7, 8)])
def test_restricted_short_tracklet_repeats_frames_evenly(n, t):
    expected = naive_short_repeat(n, t)
    for random in (True, False):
        got = RestrictedSampler(t, random=random)(n, rng(1)).tolist()
        assert got == expected
        counts = np.bincount(got, minlength=n)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1  # every frame, none favoured
    assert RestrictedSampler(6, random=False)(3, rng()).tolist() == [0, 0, 1, 1, 2, 2]  # old: [0, 1, 2, 2, 2, 2]


def test_restricted_draws_vary_and_repeat_with_seed():
    s = RestrictedSampler(4)
    draws = {tuple(s(40, rng(k))) for k in range(20)}
    assert len(draws) > 1
    assert s(40, rng(3)).tolist() == s(40, rng(3)).tolist()


def test_consecutive():
    s = ConsecutiveSampler(5)
    for seed in range(10):
        idx = s(12, rng(seed))
        assert np.all(np.diff(idx) == 1) and 0 <= idx[0] <= 7
    assert ConsecutiveSampler(5)(3, rng()).tolist() == [0, 1, 2, 0, 1]  # loop padding
    assert ConsecutiveSampler(5, random=False)(12, rng()).tolist() == [0, 1, 2, 3, 4]


def test_evenly_and_all():
    assert EvenlySampler(4)(8, rng()).tolist() == [0, 2, 4, 6]
    assert EvenlySampler(4)(2, rng()).tolist() == [0, 0, 1, 1]
    assert AllSampler()(5, rng()).tolist() == [0, 1, 2, 3, 4]


def test_dense_chunks_overlap_and_loop_pad():
    chunks = DenseSampler(4, overlap=1)(10, rng())
    assert [c.tolist() for c in chunks] == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    chunks = DenseSampler(4)(10, rng())
    assert [c.tolist() for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]
    assert [c.tolist() for c in DenseSampler(4)(2, rng())] == [[0, 1, 0, 1]]
    capped = DenseSampler(2, max_chunks=3)(20, rng())
    assert len(capped) == 3 and capped[0].tolist() == [0, 1] and capped[-1].tolist() == [18, 19]
    with pytest.raises(ReidError, match="overlap"):
        DenseSampler(4, overlap=4)


def test_factory_and_errors():
    d = DataConfig(seq_len=6, test_chunk_len=5, test_chunk_overlap=2)
    assert build_sampler("restricted", d, train=True) == RestrictedSampler(6, True)
    assert build_sampler("restricted", d, train=False) == RestrictedSampler(6, False)
    assert build_sampler("dense", d, train=False) == DenseSampler(5, 2, None)
    with pytest.raises(ReidError, match="evaluation only"):
        build_sampler("dense", d, train=True)
    with pytest.raises(ReidError, match="unknown frame sampler"):
        build_sampler("bogus", d, train=True)
    with pytest.raises(ReidError, match="at least one frame"):
        RestrictedSampler(4)(0, rng())
    clips = build_sampler("evenly", d, train=False).clips(10, rng())
    assert len(clips) == 1 and len(clips[0]) == 6
