import os
import re
import subprocess
import sys
import time

import pytest

from reid.bench import cpu_split
from reid.bench import data as bench_data
from reid.bench.cpu_split import CpuSample, CpuSplit, ProcessCpu

STAT = """cpu  1000 50 300 5000 200 10 20 30 0 0
cpu0 500 25 150 2500 100 5 10 15 0 0
intr 12345
"""


def test_machine_counters_split_busy_from_idle():
    busy, idle = cpu_split.read_machine(STAT, hz=100)
    assert busy == pytest.approx((1000 + 50 + 300 + 10 + 20 + 30) / 100)  # user nice system irq softirq steal
    assert idle == pytest.approx((5000 + 200) / 100)  # idle + iowait
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        cpu_split.read_machine("intr 1\n", hz=100)


def test_process_counters_survive_a_command_name_with_spaces_and_parentheses():
    line = "4242 (ray::Map) (x y)) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 1 0 100 0 0"
    assert cpu_split.read_process_times(line, hz=100) == pytest.approx((2.5, 0.75))  # utime 250, stime 75 ticks


ACTOR = "ray::MapWorker(MapBatches(_DecodeBatches))"


def _p(cmd: str, cpu: float, kernel: float = 0.0) -> ProcessCpu:
    return ProcessCpu(cmd, cpu, kernel)


def test_split_counts_the_actors_that_worked_and_the_rest():
    before = CpuSample(10.0, busy=100.0, idle=50.0, processes={
        1: _p(ACTOR, 5.0, 1.0), 2: _p(ACTOR, 7.0, 2.0), 3: _p(ACTOR, 1.0), 9: _p("python bench", 2.0),
        5: _p("raylet", 1.0)})
    after = CpuSample(12.0, busy=103.8, idle=50.2, processes={
        1: _p(ACTOR, 6.5, 1.25), 2: _p(ACTOR, 8.5, 2.25),
        3: _p(ACTOR, 1.0),  # an idle actor of an earlier fit: not counted
        9: _p("python bench", 2.4), 5: _p("raylet", 1.1), 7: _p(ACTOR, 0.2, 0.1)})
    s = cpu_split.split(before, after, actor_marker="_DecodeBatches", this_pid=9)
    assert s.actor_processes == 3  # 1, 2 and 7 (started inside the window: counted from zero)
    assert s.actors == pytest.approx(3.2) and s.this_process == pytest.approx(0.4)
    assert s.actors_kernel == pytest.approx(0.25 + 0.25 + 0.1)
    assert s.rest == pytest.approx(3.8 - 3.2 - 0.4) and s.idle == pytest.approx(0.2)
    assert s.wall == pytest.approx(2.0) and s.share(s.actors) == pytest.approx(1.6)


def test_a_process_that_only_names_the_actor_class_is_not_an_actor():
    """`pgrep -f _DecodeBatches`, `perf record ...`: their command lines hold the class name, Ray's title does not
    start them; counted, a split would see more actor processes than the pool and measure nothing."""
    watcher = "python3 /tmp/watch.py _DecodeBatches"
    before = CpuSample(0.0, busy=10.0, idle=0.0, processes={1: _p(ACTOR, 1.0), 2: _p(watcher, 1.0)})
    after = CpuSample(1.0, busy=11.5, idle=0.0, processes={1: _p(ACTOR, 2.0), 2: _p(watcher, 1.5)})
    s = cpu_split.split(before, after, actor_marker="_DecodeBatches", this_pid=9)
    assert s.actor_processes == 1 and s.actors == pytest.approx(1.0) and s.rest == pytest.approx(0.5)
    untitled = cpu_split.split(before, after, actor_marker="_DecodeBatches", this_pid=9, title_prefix="")
    assert untitled.actor_processes == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_a_real_window_sees_this_process_burn_cpu():
    a, c0 = cpu_split.sample(), time.process_time()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        sum(i * i for i in range(1000))
    b, burnt = cpu_split.sample(), time.process_time() - c0
    assert a is not None and b is not None and os.getpid() in b.processes
    s = cpu_split.split(a, b, actor_marker="no-such-actor")
    assert s.actor_processes == 0 and s.actors == 0
    assert 0 <= b.processes[os.getpid()].kernel <= b.processes[os.getpid()].cpu
    assert s.this_process == pytest.approx(burnt, abs=0.05)  # clock ticks are 10 ms
    assert s.this_process + s.rest + s.idle == pytest.approx(s.wall * s.cores, rel=0.25)


def test_an_actor_gone_by_the_end_counts_up_to_its_last_reading():
    before = CpuSample(0.0, busy=10.0, idle=0.0, processes={4: _p("ray::MapWorker(_DecodeBatches)", 1.0, 0.5)})
    after = CpuSample(1.0, busy=12.0, idle=0.0, processes={9: _p("python bench", 0.5)})
    s = cpu_split.split(before, after, actor_marker="_DecodeBatches", this_pid=9,
                        last_seen={4: _p("ray::MapWorker(_DecodeBatches)", 2.5, 0.75)})
    assert s.actor_processes == 1 and s.actors == pytest.approx(1.5) and s.actors_kernel == pytest.approx(0.25)
    assert s.this_process == pytest.approx(0.5) and s.rest == pytest.approx(0.0)
    assert cpu_split.split(before, after, actor_marker="_DecodeBatches", this_pid=9).actors == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_watch_counts_a_process_that_exits_inside_the_window():
    marker = "cpu-split-test-marker"
    burn = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"
    watch = cpu_split.Watch(marker, interval=0.02, rescan=0.05, title_prefix="")  # a plain process, no Ray title
    watch.start()
    subprocess.run([sys.executable, "-c", burn, marker], check=True)  # found by a rescan, gone before stop()
    s = watch.stop()
    assert s is not None and s.actor_processes == 1
    assert s.actors == pytest.approx(0.6, abs=0.15)  # up to its last reading, taken every 20 ms


def _stores(**cpu):
    return {"jpeg": {"bytes_per_frame": 4000, "raw": 200.0, "startup_s": 2.0, "fit": 360.0, "steady": 370.0,
                     "fit_1": 190.0, "actor_starts": 2, "raw_cpu": 210.0, **cpu}}


def test_report_shows_where_the_cpus_went():
    cpu = {"cores": 2, "cpu_actors": 1.56, "cpu_consumer": 0.22, "cpu_rest": 0.1, "cpu_idle": 0.12, "actor_cpu": 168.0,
           "actor_kernel": 0.184}
    report = bench_data.format_report("t", _stores(**cpu), baseline=60.0, workers=2, default="jpeg")
    assert "CPU in the 2-actor fits, first batch to last, in cores of this machine's 2; cpu/raw = " in report
    assert re.search(r"^store\s+actors\s+consumer\s+rest\s+idle\s+cpu/raw\s+kernel$", report, re.M)
    assert re.search(r"^jpeg\s+1\.56\s+0\.22\s+0\.10\s+0\.12\s+0\.80\s+18%$", report, re.M)  # 168 / 210
    bare = bench_data.format_report("t", _stores(), baseline=60.0, workers=2, default="jpeg")
    assert "CPU split: not measured" in bare and "CPU-second /" not in bare
    both = {**_stores(**cpu), "video": {**_stores()["jpeg"], "raw": 50.0}}  # video's split not measured
    report = bench_data.format_report("t", both, baseline=60.0, workers=2, default="jpeg")
    assert re.search(r"^jpeg\s+1\.56\s+0\.22\s+0\.10\s+0\.12\s+0\.80\s+18%$", report, re.M)
    assert re.search(r"^video\s+not measured: some fit's window did not see exactly the pool's actors start",
                     report, re.M)


def _fit(cpu: CpuSplit | None, rate: float | None) -> bench_data.FitTiming:
    return bench_data.FitTiming(1.0, 100.0, 100.0, 2, [100.0], cpu, rate)


def test_cpu_columns_are_medians_and_vanish_when_a_fit_could_not_measure():
    splits = [CpuSplit(wall=2.0, cores=2, actors=a, actor_processes=2, this_process=0.4, rest=0.2, idle=0.2,
                       actors_kernel=k) for a, k in ((3.0, 0.3), (3.2, 0.8), (3.4, 0.85))]
    cols = bench_data.cpu_columns([_fit(s, r) for s, r in zip(splits, (150.0, 160.0, 170.0), strict=True)])
    assert cols["cpu_actors"] == pytest.approx(1.6) and cols["actor_cpu"] == 160.0 and cols["cores"] == 2
    assert cols["actor_kernel"] == pytest.approx(0.25)  # the median of 0.1, 0.25, 0.25
    assert bench_data.cpu_columns([_fit(splits[0], 150.0), _fit(None, None)]) == {}
    idle = CpuSplit(wall=2.0, cores=2, actors=0.0, actor_processes=0, this_process=0.4, rest=0.2, idle=3.4)
    assert bench_data.cpu_columns([_fit(splits[0], 150.0), _fit(idle, 150.0)]) == {}  # done before the first batch


def test_a_window_opened_before_the_pool_counts_only_the_actors_started_inside_it():
    before = CpuSample(0.0, busy=10.0, idle=0.0, processes={3: _p(ACTOR, 4.0), 9: _p("python bench", 1.0)})
    after = CpuSample(3.0, busy=16.0, idle=0.0, processes={
        3: _p(ACTOR, 4.3),  # the previous fit's actor, still ending
        11: _p(ACTOR, 2.5, 0.5), 12: _p(ACTOR, 2.0, 0.25), 9: _p("python bench", 1.5)})
    whole = cpu_split.split(before, after, actor_marker="_DecodeBatches", this_pid=9, new_only=True)
    assert whole.actor_processes == 2 and whole.actors == pytest.approx(4.5) and whole.actors_kernel == 0.75
    assert cpu_split.split(before, after, actor_marker="_DecodeBatches", this_pid=9).actor_processes == 3


def test_the_actors_cpu_per_clip_leaves_their_start_up_out_and_needs_the_whole_pool():
    whole = CpuSplit(wall=3.0, cores=2, actors=5.0, actor_processes=2, this_process=0.5, rest=0.2, idle=0.3)
    assert bench_data.actor_cpu_rate(whole, ready_cpu_s=1.0, clips=1600, pool=2) == pytest.approx(400.0)
    assert bench_data.actor_cpu_rate(whole, ready_cpu_s=1.0, clips=1600, pool=3) is None  # one actor not seen
    assert bench_data.actor_cpu_rate(whole, ready_cpu_s=5.0, clips=1600, pool=2) is None  # nothing after set-up
    assert bench_data.actor_cpu_rate(None, ready_cpu_s=0.0, clips=1600, pool=2) is None  # no /proc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_watch_returns_the_window_from_its_mark_and_keeps_the_whole_one():
    marker = "cpu-split-mark-marker"
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
    watch = cpu_split.Watch(marker, interval=0.02, rescan=0.05, title_prefix="")
    watch.start()
    subprocess.run([sys.executable, "-c", burn, marker], check=True)  # started and gone before the mark
    watch.mark()
    s = watch.stop()
    assert s is not None and s.actor_processes == 0  # nothing of it after the mark
    assert watch.whole is not None and watch.whole.actor_processes == 1
    assert watch.whole.actors == pytest.approx(0.4, abs=0.15)
