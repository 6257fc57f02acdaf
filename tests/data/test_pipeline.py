import threading
from collections import Counter

import numpy as np
import pytest
import ray

from reid.bench.toydata import write_toy_dataset
from reid.config.schema import ExperimentConfig
from reid.data.batching import make_batch
from reid.data.pipeline import build_train_dataset, get_or_create_clock, iter_epoch, unreadable_tracklets
from reid.data.plan import global_plan
from reid.data.records import read_manifest

pytestmark = pytest.mark.ray
P, K, T = 2, 2, 4


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), ids=8, cams=2, num_frames=10)


def cfg(**data):
    base = {"height": 32, "width": 16, "seq_len": T, "ids_per_batch": P, "tracklets_per_id": K,
            "decode_workers": 1, "decode_cpus": 0.5, "decode_timeout_s": 30}
    return ExperimentConfig(seed=11, data={**base, **data})


def run_epoch(shard, clock, epoch):
    return {int(b["batch_index"]): {k: v.numpy() for k, v in b.items()} for b in iter_epoch(shard, clock, epoch)}


@pytest.mark.timeout(300)
def test_batches_shapes_and_epochs(ray_cluster, manifest_path):
    c = cfg()
    clock = get_or_create_clock("test-run-a")
    ds = build_train_dataset(manifest_path, c, {"frames", "flow"}, "pk", world_size=1, clock_name="test-run-a")
    e0 = run_epoch(ds.iterator(), clock, 0)
    e1 = run_epoch(ds.iterator(), clock, 1)
    assert sorted(e0) == sorted(e1) == [0, 1, 2, 3]  # 8 identities / P = 2
    m = read_manifest(manifest_path)
    for b in e0.values():
        assert b["frames"].shape == (P * K, T, 3, 32, 16) and b["frames"].dtype == np.uint8
        assert b["flow"].shape == (P * K, T, 2, 32, 16) and b["flow"].dtype == np.float16
        assert b["pid"].dtype == np.int64 and b["camid"].shape == (P * K,) and int(b["epoch"]) == 0
        assert set(Counter(m.records[i].pid for i in b["index"]).values()) == {K}
    assert any(not np.array_equal(e0[i]["index"], e1[i]["index"]) for i in e0)  # a new plan each epoch
    # the pipeline's batch is exactly the in-process batch of the same plan row
    row = global_plan(m.records, c, "pk", 1, 1)[2]
    local = make_batch(row, m, c, {"frames", "flow"}, train=True)
    for k, v in local.items():
        np.testing.assert_array_equal(e1[2][k], v)


@pytest.mark.timeout(300)
def test_a_restarted_run_gets_the_same_epoch(ray_cluster, manifest_path):
    """A fresh dataset and clock (a resumed run) asked for epoch 1 yields the same batches as an in-process run."""
    c = cfg()
    clock = get_or_create_clock("test-run-b")
    ds = build_train_dataset(manifest_path, c, {"frames"}, "pk", world_size=1, clock_name="test-run-b")
    again = run_epoch(ds.iterator(), clock, 1)
    m = read_manifest(manifest_path)
    rows = global_plan(m.records, c, "pk", 1, 1)
    assert sorted(again) == [r.batch for r in rows]
    for row in rows:
        local = make_batch(row, m, c, {"frames"}, train=True)
        np.testing.assert_array_equal(again[row.batch]["frames"], local["frames"])
        np.testing.assert_array_equal(again[row.batch]["index"], local["index"])


@pytest.mark.timeout(300)
def test_two_shards_see_disjoint_whole_batches(ray_cluster, manifest_path):
    c = cfg(batches_per_epoch=3)  # rounded up to 4 for two workers
    clock = get_or_create_clock("test-run-split")
    ds = build_train_dataset(manifest_path, c, {"frames"}, "pk", world_size=2, clock_name="test-run-split")
    shards = ds.streaming_split(2, equal=True)
    seen: list[dict] = [{}, {}]
    errors = []

    def consume(rank):
        try:
            seen[rank] = run_epoch(shards[rank], clock, 0)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    assert not errors, errors
    assert len(seen[0]) == len(seen[1]) == 2
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == {0, 1, 2, 3}
    for part in seen:
        for b in part.values():
            assert b["frames"].shape[0] == P * K and len(set(b["pid"].tolist())) == P


@pytest.mark.timeout(300)
def test_corrupt_video_is_skipped_and_counted(ray_cluster, tmp_path):
    path = write_toy_dataset(tmp_path, ids=4, cams=2, tracklets_per_cam=2, num_frames=8)
    m = read_manifest(path)
    victim = 3
    (m.root / m.records[victim].video).write_bytes(b"\x00garbage" * 300)
    c = cfg(max_errored_fraction=0.2, batches_per_epoch=4, ids_per_batch=4, tracklets_per_id=4)
    clock = get_or_create_clock("test-run-corrupt")
    ds = build_train_dataset(path, c, {"frames"}, "pk", world_size=1, clock_name="test-run-corrupt")
    batches = run_epoch(ds.iterator(), clock, 0)
    assert len(batches) == 4
    for b in batches.values():
        assert victim not in b["index"].tolist() and b["frames"].shape[0] == 16
        assert set(Counter(b["pid"].tolist()).values()) == {4}
    bad = unreadable_tracklets(clock)
    assert list(bad) == [victim] and "cannot open video" in bad[victim]
