"""`reid bench data --plot`: the delivery curve, the raw-decode reference and the figure (reid/bench/data_plot.py)."""

import struct

from reid.bench import data as bench_data
from reid.bench.data_plot import StoreTimeline, delivery_curve, epoch_starts, limit_line, write_plot


def test_delivery_curve_counts_every_batch_in_arrival_order():
    # a task's batches arrive together (1.0, 1.0); the second epoch's first batch at 3.5
    times, clips = delivery_curve([[1.0, 1.0, 2.0], [3.5]], clips_per_batch=4)
    assert times == [1.0, 1.0, 2.0, 3.5] and clips == [4, 8, 12, 16]
    # naive reading of delivered(a_i) = i * c: the clips delivered by t are c x the batches arrived by then
    arrivals = [[0.7, 0.9], [0.8, 1.6], [2.0]]
    times, clips = delivery_curve(arrivals, clips_per_batch=3)
    for t, n in zip(times, clips, strict=True):  # distinct arrivals: one step each
        assert n == 3 * sum(a <= t for e in arrivals for a in e)
    assert times == sorted(times)
    assert delivery_curve([], clips_per_batch=3) == ([], [])


def test_limit_line_starts_at_the_first_batch_and_rises_at_the_rate():
    xs, ys = limit_line(first=1.0, last=3.0, clips_per_batch=4, rate=10.0)
    assert xs == [1.0, 3.0] and ys == [4.0, 24.0]  # ref(t) = c + rate * (t - a_1)


def test_epoch_starts_are_the_first_batches_after_the_first_epoch():
    assert epoch_starts([[1.0, 2.0], [3.0, 4.0], [], [6.0]]) == [3.0, 6.0]
    assert epoch_starts([[1.0, 2.0]]) == []


def test_median_fit_is_the_middle_fit_by_fit_level_rate():
    fits = [bench_data.FitTiming(1.0, rate, rate, 2, arrivals=[[float(rate)]]) for rate in (300.0, 100.0, 200.0)]
    assert bench_data.median_fit(fits).fit_rate == 200.0
    assert bench_data.median_fit(fits + [bench_data.FitTiming(1.0, 400.0, 400.0, 2)]).fit_rate == 300.0


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


def test_the_plot_has_a_panel_per_store(tmp_path):
    timeline = StoreTimeline(arrivals_n=[[2.0, 2.0, 2.5], [3.0, 3.2]], arrivals_1=[[2.1, 2.6, 3.1], [3.6, 4.1]],
                             raw=100.0)
    one = write_plot(tmp_path / "one.png", "t", {"jpeg": timeline}, workers=2, clips_per_batch=16)
    two = write_plot(tmp_path / "sub" / "two.png", "t", {"video": timeline, "jpeg": timeline}, workers=2,
                     clips_per_batch=16)
    (w1, h1), (w2, h2) = _png_size(one), _png_size(two)
    assert h1 == h2 and 1.9 < w2 / w1 < 2.1
    # 1 actor only (--workers 1): no 1-actor curve of its own, still a figure
    alone = write_plot(tmp_path / "alone.png", "t", {"jpeg": StoreTimeline([[1.0, 1.5]], [], 50.0)}, workers=1,
                       clips_per_batch=4)
    assert _png_size(alone) == (w1, h1)
