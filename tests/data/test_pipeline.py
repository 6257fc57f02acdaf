import os
import threading
import time
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import ray

from reid.bench.toydata import write_toy_dataset
from reid.config.schema import ExperimentConfig
from reid.data.batching import iter_local_batches, make_batch
from reid.data.device_decode import decode_batch
from reid.data.jpeg_pack import pack_jpeg
from reid.data.pipeline import (
    SpareFrames,
    batches_per_task,
    get_or_create_ledger,
    open_rank_stream,
    task_sizes,
    unreadable_tracklets,
)
from reid.data.plan import global_plan
from reid.data.records import Manifest, read_manifest, write_manifest
from reid.errors import ReidError
from reid.ray_runtime import start_local_ray

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # minutes: Ray clusters and decoding actors
P, K, T = 2, 2, 4


@pytest.fixture(scope="module")
def ray_cluster():
    start_local_ray(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), ids=8, cams=2, num_frames=10)


def cfg(epochs=2, **data):
    base = {"height": 32, "width": 16, "seq_len": T, "ids_per_batch": P, "tracklets_per_id": K,
            "decode_workers": 1, "decode_cpus": 0.5, "decode_timeout_s": 30}
    return ExperimentConfig(seed=11, train={"epochs": epochs}, data={**base, **data})


def stream(path, c, name, *, inputs=("frames",), rank=0, world_size=1, start=0):
    ledger = get_or_create_ledger(name)
    s = open_rank_stream(path, c.data, c.seed, set(inputs), "pk", rank=rank, world_size=world_size,
                         start_epoch=start, end_epoch=c.train.epochs, ledger_name=name)
    return s, ledger


def run_epoch(s, epoch):
    return [{k: v.numpy() for k, v in b.items()} for b in s.epoch(epoch)]


def assert_same_batches(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert sorted(g) == sorted(w)
        for k in w:
            np.testing.assert_array_equal(g[k], w[k], err_msg=k)


@pytest.mark.timeout(300)
def test_one_execution_serves_every_epoch_with_the_in_process_batches(ray_cluster, manifest_path):
    c = cfg(epochs=3, decode_workers=2)
    s, ledger = stream(manifest_path, c, "test-run-a", inputs=("frames", "flow"))
    m = read_manifest(manifest_path)
    epochs = [run_epoch(s, e) for e in range(3)]
    assert [[int(b["batch_index"]) for b in e] for e in epochs] == [[0, 1, 2, 3]] * 3  # 8 identities / P = 2
    for b in epochs[0]:
        assert b["frames"].shape == (P * K, T, 3, 32, 16) and b["frames"].dtype == np.uint8
        assert b["flow"].shape == (P * K, T, 2, 32, 16) and b["flow"].dtype == np.float16
        assert b["pid"].dtype == np.int64 and b["camid"].shape == (P * K,) and int(b["epoch"]) == 0
        assert set(Counter(m.records[i].pid for i in b["index"]).values()) == {K}
    assert any(not np.array_equal(a["index"], b["index"]) for a, b in zip(*epochs[:2], strict=True))
    # every batch is exactly the in-process batch of the same plan row
    for e in range(3):
        rows = global_plan(m.records, c.data, c.seed, "pk", e, 1)
        assert_same_batches(epochs[e], [make_batch(r, m, c.data, {"frames", "flow"}, train=True) for r in rows])
    # the decoding actors started once for the fit, not once per epoch
    assert ray.get(ledger.decoder_starts.remote()) == 2
    # each reported its CPU-seconds when ready (its imports: well over a tick), what `reid bench data` leaves out
    assert ray.get(ledger.decoder_ready_cpu.remote()) > 0.05
    with pytest.raises(ReidError, match="at epoch 3, epoch 0 was requested"):
        next(s.epoch(0))


def _in_shared_memory(address: int) -> bool:
    """Whether `address` lies in a shared mapping of this process (the object store's), not in private memory."""
    for line in open("/proc/self/maps"):
        span, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in span.split("-"))
        if lo <= address < hi:
            return perms[3] == "s"
    return False


@pytest.mark.timeout(300)
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc/self/maps")
def test_a_task_of_several_batches_reaches_the_reader_without_a_copy(ray_cluster, manifest_path):
    """A decoding task's batches are decoded into one array, and the reader gets each as a view of the object
    store's copy (batches yielded one by one made a block of several chunks, which Ray Data's batcher combined
    into private memory before slicing); they are exactly the in-process batches."""
    # 1 actor, 16 batches: tasks of up to 4 batches; frames of 128x64 make batches of 384 KiB, so that the object
    # store holds them (Ray keeps objects under 100 KiB in the owner's private memory)
    c = cfg(epochs=1, batches_per_epoch=16, height=128, width=64)
    assert max(task_sizes(16, 1)) == 4
    s, _ = stream(manifest_path, c, "test-run-rows")
    got = list(s.epoch(0))
    assert [_in_shared_memory(b["frames_hwc"].data_ptr()) for b in got] == [True] * 16
    m = read_manifest(manifest_path)
    rows = global_plan(m.records, c.data, c.seed, "pk", 0, 1)
    assert_same_batches([{k: v.numpy() for k, v in b.items()} for b in got],
                        [make_batch(r, m, c.data, {"frames"}, train=True) for r in rows])


@pytest.mark.timeout(300)
def test_a_resumed_run_gets_the_same_epochs(ray_cluster, manifest_path):
    """A fresh stream that starts at epoch 1 (a resumed run) yields exactly epoch 1's and 2's batches."""
    c = cfg(epochs=3)
    s, _ = stream(manifest_path, c, "test-run-b", start=1)
    m = read_manifest(manifest_path)
    for e in (1, 2):
        want = list(iter_local_batches(m, c.data, c.seed, {"frames"}, "pk", e))
        assert_same_batches(run_epoch(s, e), [{k: v.numpy() for k, v in b.items()} for b in want])


@pytest.mark.timeout(300)
def test_each_rank_gets_its_own_batches_deterministically(ray_cluster, manifest_path):
    c = cfg(epochs=2, batches_per_epoch=3)  # rounded up to 4 for two workers
    m = read_manifest(manifest_path)
    seen: list[list] = [[], []]
    errors = []

    def consume(rank):
        try:
            s, _ = stream(manifest_path, c, f"test-run-split-{rank}", rank=rank, world_size=2)
            seen[rank] = [run_epoch(s, e) for e in range(2)]
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(200)
    assert not errors, errors
    for rank in range(2):
        for e in range(2):
            assert [int(b["batch_index"]) for b in seen[rank][e]] == [rank, rank + 2]
            want = iter_local_batches(m, c.data, c.seed, {"frames"}, "pk", e, rank=rank, world_size=2)
            assert_same_batches(seen[rank][e], [{k: v.numpy() for k, v in b.items()} for b in want])


@pytest.mark.timeout(300)
def test_trainer_decode_ships_the_jpeg_bytes_through_the_pipeline(ray_cluster, manifest_path, tmp_path):
    """data.jpeg_decode=trainer: rows of variable-length bytes reach the worker as the in-process batches do."""
    path = write_manifest(pack_jpeg(read_manifest(manifest_path), tmp_path / "jpeg", progress=False))
    c = cfg(epochs=1, jpeg_decode="trainer")
    s, _ = stream(path, c, "test-run-trainer-decode")
    got = run_epoch(s, 0)
    want = iter_local_batches(read_manifest(path), c.data, c.seed, {"frames"}, "pk", 0)
    assert_same_batches(got, [{k: v.numpy() for k, v in b.items()} for b in want])
    for b in got:
        assert "frames" not in b and b["jpeg_offsets"].shape == (P * K * T + 1,)
        assert tuple(decode_batch(b, "cpu")["frames"].shape) == (P * K, T, 3, 32, 16)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("store", ["video", "jpeg"])
def test_corrupt_tracklet_is_skipped_and_counted(ray_cluster, tmp_path, store):
    path = write_toy_dataset(tmp_path / "video", ids=4, cams=2, tracklets_per_cam=2, num_frames=8)
    m = read_manifest(path)
    victim = 3
    if store == "jpeg":
        m = pack_jpeg(m, tmp_path / "jpeg", progress=False)
        records = list(m.records)
        records[victim] = replace(records[victim], shard="jpeg/gone.parquet")  # a shard lost on the way
        path = write_manifest(Manifest(records, m.root, m.dataset, m.attributes, m.meta))
        (m.root / "jpeg" / "gone.parquet").write_bytes(b"PAR1 truncated")
        expected = "cannot open JPEG shard"
    else:
        (m.root / m.records[victim].video).write_bytes(b"\x00garbage" * 300)
        expected = "cannot open video"
    c = cfg(epochs=1, max_errored_fraction=0.2, batches_per_epoch=8, ids_per_batch=4, tracklets_per_id=4)
    assert task_sizes(8, c.data.decode_workers) == [1, 2, 2, 2, 1]  # replacements inside tasks of several batches
    s, ledger = stream(path, c, f"test-run-corrupt-{store}")
    batches = run_epoch(s, 0)
    assert len(batches) == 8
    for b in batches:
        assert victim not in b["index"].tolist() and b["frames_hwc"].shape[0] == 16
        assert set(Counter(b["pid"].tolist()).values()) == {4}
    bad = unreadable_tracklets(ledger)
    assert list(bad) == [victim] and expected in bad[victim]


@pytest.mark.timeout(300)
def test_too_many_unreadable_tracklets_fail_the_stream_clearly(ray_cluster, tmp_path):
    path = write_toy_dataset(tmp_path, ids=4, cams=2, tracklets_per_cam=2, num_frames=8)
    m = read_manifest(path)
    for victim in (0, 5, 9):
        (m.root / m.records[victim].video).write_bytes(b"\x00garbage" * 300)
    c = cfg(epochs=1, max_errored_fraction=0.1, batches_per_epoch=2, ids_per_batch=4, tracklets_per_id=4)
    s, ledger = stream(path, c, "test-run-too-many")
    with pytest.raises(Exception, match="max_errored_fraction=0.1"):
        run_epoch(s, 0)
    assert len(unreadable_tracklets(ledger)) >= 2


@pytest.mark.timeout(300)
def test_a_hanging_decode_ends_in_time_and_the_tracklet_is_replaced(ray_cluster, tmp_path):
    """A tracklet whose decode never returns (a FIFO with no writer) makes the watchdog end the decoding actor;
    Ray restarts it, the retried batch skips that tracklet, and every batch still arrives."""
    path = write_toy_dataset(tmp_path, ids=4, cams=2, tracklets_per_cam=2, num_frames=8)
    m = read_manifest(path)
    victim = 2
    fifo = m.root / "videos" / "never.mp4"
    os.mkfifo(fifo)
    records = list(m.records)
    records[victim] = replace(records[victim], video="videos/never.mp4")
    write_manifest(Manifest(records, m.root, m.dataset, m.attributes, m.meta), path)
    c = cfg(epochs=1, max_errored_fraction=0.2, batches_per_epoch=8, ids_per_batch=4, tracklets_per_id=4,
            decode_timeout_s=3)
    # the first task (1 batch) hangs; the restarted actor retries it and goes on with tasks of 2 batches
    assert task_sizes(8, c.data.decode_workers) == [1, 2, 2, 2, 1]
    t0 = time.monotonic()
    s, ledger = stream(path, c, "test-run-hang")
    batches = run_epoch(s, 0)
    assert time.monotonic() - t0 < 120
    assert [int(b["batch_index"]) for b in batches] == list(range(8))
    for b in batches:
        assert victim not in b["index"].tolist() and b["frames_hwc"].shape[0] == 16
    bad = unreadable_tracklets(ledger)
    assert list(bad) == [victim] and "longer than 3 s" in bad[victim]
    assert ray.get(ledger.decoder_starts.remote()) == 2  # the first actor ended, its restart finished the epoch


def test_batches_per_task_is_large_but_leaves_every_actor_several_tasks():
    assert batches_per_task(96, 2) == 8  # `reid bench data`: 3 epochs of 32 batches, 2 actors
    assert batches_per_task(96, 1) == 8
    assert batches_per_task(20, 1) == 5  # 4 tasks for the one actor
    assert batches_per_task(12, 2) == 1  # a short fit: one batch per task, as many tasks as possible
    assert batches_per_task(3, 16) == 1 and batches_per_task(0, 0) == 1


def test_task_sizes_ramp_up_per_actor_and_cover_the_stream():
    """Each actor's first and last tasks are short (the first batch of the fit is one decode away; no actor decodes
    a long last task alone), the others long."""
    assert task_sizes(96, 2)[:8] == [1, 1, 2, 2, 4, 4, 8, 8] and task_sizes(96, 2)[-6:] == [4, 4, 2, 2, 1, 1]
    assert task_sizes(96, 1)[:5] == [1, 2, 4, 8, 8] and task_sizes(96, 1)[-3:] == [4, 2, 1]
    assert task_sizes(12, 2) == [1] * 12  # too short to ramp: one batch per task
    for batches, actors in [(96, 2), (97, 3), (5, 1), (1, 16), (600, 16), (0, 2)]:
        sizes = task_sizes(batches, actors)
        assert sum(sizes) == batches and all(n >= 1 for n in sizes)
        assert max(sizes, default=1) <= batches_per_task(batches, actors)


def test_a_task_decodes_into_the_frames_array_an_earlier_task_gave_back():
    """No fresh pages per task, and never the array of a batch the same task may still hold in its output."""
    shape = (4, 2, 3, 8, 4)  # one batch: B, T, 3, H, W
    spare = SpareFrames()
    base, frames = spare.take("task-1", 4, shape)
    assert frames is base and frames.shape == (4, *shape) and frames.dtype == np.uint8
    spare.give("task-1", base)
    again, _ = spare.take("task-1", 4, shape)  # a second call of the same task gets its own array
    assert not np.may_share_memory(again, base)
    spare.give("task-1", again)
    reused, frames = spare.take("task-2", 2, shape)  # the next task decodes into the first rows of that one
    assert reused is again and frames.shape == (2, *shape) and np.shares_memory(frames, again)
    spare.give("task-2", reused)
    bigger, _ = spare.take("task-3", 8, shape)  # too small for 8 rows: a new array, which is kept after
    assert not np.may_share_memory(bigger, again) and len(bigger) == 8
    spare.give("task-3", bigger)
    spare.give("task-3", base)  # a smaller one does not replace it
    assert spare.take("task-4", 8, shape)[0] is bigger
    spare.give("task-4", bigger)
    other, _ = spare.take("task-5", 8, (4, 2, 3, 16, 8))  # another batch shape: a new array
    assert not np.may_share_memory(other, bigger)


def test_the_decoding_actors_module_imports_neither_torch_nor_scipy():
    """Every decoding actor imports reid.data.pipeline when it starts, once per fit per actor: torch (about 3 s here)
    and scipy (0.15-0.3 s) belong to the few paths that need them (the worker's device side, optical flow)."""
    import subprocess
    import sys

    code = ("import sys, reid.data.pipeline, reid.data.decode, reid.data.jpeg_store; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
