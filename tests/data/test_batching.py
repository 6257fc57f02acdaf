import numpy as np
import pytest
import torch

from reid.bench.toydata import write_toy_dataset
from reid.config.schema import DataConfig
from reid.data.batching import BatchMaker, batch_frames, iter_local_batches, make_batch, make_test_clips
from reid.data.plan import PlanRow, epoch_plan
from reid.data.records import read_manifest
from reid.errors import ReidError

ALL = {"frames", "flow", "pose_maps", "keypoints", "attributes"}


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_toy_dataset(root, ids=6, cams=2, tracklets_per_cam=2, num_frames=10, query_ids=1)


SEED = 3


def cfg(**data) -> DataConfig:
    """The `data` section the batching layer takes (with the run's seed, SEED, where a plan is drawn)."""
    base = {"height": 32, "width": 16, "seq_len": 4, "ids_per_batch": 2, "tracklets_per_id": 2,
            "decode_timeout_s": 20, "max_errored_fraction": 0.5, "augment": {"pad": 2, "random_erasing": 0.5}}
    return DataConfig.model_validate({**base, **data})


def test_pk_batch_contract(manifest_path):
    m = read_manifest(manifest_path)
    c = cfg()
    row = epoch_plan(m.records, c, SEED, "pk", epoch=0)[0]
    b = make_batch(row, m, c, ALL, train=True)
    assert b["frames"].shape == (4, 4, 3, 32, 16) and b["frames"].dtype == np.uint8
    assert b["flow"].shape == (4, 4, 2, 32, 16) and b["flow"].dtype == np.float16
    assert np.abs(b["flow"]).max() <= 1 and np.abs(b["flow"][:, 1:]).max() > 0
    assert b["pose_maps"].shape == (4, 4, 57, 4, 2) and b["pose_maps"].dtype == np.float16
    assert b["keypoints"].shape == (4, 4, 18, 3) and b["keypoints"].dtype == np.float32
    assert b["attributes"].shape == (4, 2) and b["attributes"].dtype == np.int64
    for k in ("pid", "camid", "index"):
        assert b[k].shape == (4,) and b[k].dtype == np.int64
    assert b["index"].tolist() == list(row.indices)
    assert b["pid"].max() < 5 and len(set(b["pid"].tolist())) == 2  # contiguous train labels, P = 2
    assert int(b["epoch"]) == 0 and int(b["batch_index"]) == 0
    attrs = [m.records[i].attributes for i in row.indices]
    assert b["attributes"].tolist() == [[a["gender"], a["top color"]] for a in attrs]
    # frames only: decoded and resized channels last, the crop, flip and erasing left to the worker's device, the
    # same clips once finished
    b2 = make_batch(row, m, c, {"frames"}, train=True)
    assert set(b2) == {"frames_hwc", "frames_augment", "pid", "camid", "index", "epoch", "batch_index"}
    assert b2["frames_hwc"].shape == (4, 4, 32, 16, 3) and b2["frames_hwc"].dtype == np.uint8
    assert b2["frames_augment"].shape == (4, 12) and b2["frames_augment"].dtype == np.int64
    np.testing.assert_array_equal(batch_frames(b2), b["frames"])  # deterministic for a row


def test_pairs_batch(manifest_path):
    m = read_manifest(manifest_path)
    c = cfg(pairs_per_batch=3)
    row = epoch_plan(m.records, c, SEED, "pairs", epoch=1)[0]
    b = make_batch(row, m, c, {"frames"}, train=True)
    assert batch_frames(b).shape[0] == 6 and b["pair_same"].shape == (3,) and b["pair_same"].dtype == np.float32
    assert b["pair_same"].tolist() == list(row.pair_same)
    assert b["pair_same"].tolist() == (b["pid"][:3] == b["pid"][3:]).astype(float).tolist()


def test_validation_batches_are_not_augmented(manifest_path):
    m = read_manifest(manifest_path)
    c = cfg()
    row = epoch_plan(m.records, c, SEED, "pk", epoch=0)[0]
    other_seed = PlanRow(row.epoch, row.batch, row.indices, row.seed + 1)
    a = make_batch(row, m, c, {"frames"}, train=False)
    np.testing.assert_array_equal(a["frames"], make_batch(other_seed, m, c, {"frames"}, train=False)["frames"])
    assert not np.array_equal(a["frames"], batch_frames(make_batch(row, m, c, {"frames"}, train=True)))


def test_corrupt_tracklet_replaced_by_same_identity(manifest_path, tmp_path):
    m = read_manifest(manifest_path)
    c = cfg()
    row = epoch_plan(m.records, c, SEED, "pk", epoch=0)[0]
    victim = row.indices[0]
    maker = BatchMaker(m, c, {"frames"}, train=True)
    try:
        good = maker(row)
        bad = m.records[victim]
        (m.root / bad.video).rename(m.root / (bad.video + ".bak"))
        (m.root / bad.video).write_bytes(b"not a video at all" * 50)
        try:
            b = maker(row)
        finally:
            (m.root / (bad.video + ".bak")).replace(m.root / bad.video)
        assert list(maker.errors.bad) == [victim]
        assert b["index"][0] != victim and m.records[int(b["index"][0])].pid == bad.pid
        assert b["pid"].tolist() == good["pid"].tolist()  # the P x K identity structure is unchanged
        np.testing.assert_array_equal(batch_frames(b)[1:], batch_frames(good)[1:])  # other slots untouched
    finally:
        maker.close()


def test_unreadable_identity_moves_slots_and_threshold_fails(manifest_path):
    m = read_manifest(manifest_path)
    c = cfg()
    row = epoch_plan(m.records, c, SEED, "pk", epoch=0)[0]
    pid = m.records[row.indices[0]].pid
    same = [i for i, r in enumerate(m.records) if r.pid == pid and r.role == "train"]
    maker = BatchMaker(m, c, {"frames"}, train=True, known_bad={i: "known bad" for i in same})
    try:
        b = maker(row)
        pids = [m.records[int(i)].pid for i in b["index"]]
        assert pid not in pids and len(set(pids)) == 2 and pids[0] == pids[1]
    finally:
        maker.close()
    strict = cfg(max_errored_fraction=0.1)  # 20 train tracklets: 2 tolerated
    maker = BatchMaker(m, strict, {"frames"}, train=True, known_bad={same[0]: "x", same[1]: "y"})
    try:
        with pytest.raises(ReidError, match="could not be decoded, more than data.max_errored_fraction=0.1"):
            maker.errors.add(same[2], "t", "corrupt")
    finally:
        maker.close()


def test_local_iterator_and_missing_inputs(manifest_path):
    c = cfg()
    batches = list(iter_local_batches(manifest_path, c, SEED, {"frames"}, "pk", epoch=2, rank=1, world_size=2))
    rows = epoch_plan(read_manifest(manifest_path).records, c, SEED, "pk", 2, rank=1, world_size=2)
    assert len(batches) == len(rows) >= 1
    assert all(isinstance(v, torch.Tensor) for v in batches[0].values())
    assert [int(b["batch_index"]) for b in batches] == [r.batch for r in rows]
    with pytest.raises(ReidError, match="unknown batch inputs"):
        BatchMaker(read_manifest(manifest_path), c, {"depth"})


def test_test_clips_dense(manifest_path):
    m = read_manifest(manifest_path)
    c = cfg(test_sampler="dense", test_chunk_len=4, test_chunk_overlap=1)
    maker = BatchMaker(m, c, {"frames", "flow"}, train=False)
    try:
        clips = make_test_clips(maker, 0)  # 10 frames, chunks of 4 every 3: 0-3, 3-6, 6-9
        assert clips["frames"].shape == (3, 4, 3, 32, 16) and clips["flow"].shape == (3, 4, 2, 32, 16)
        assert np.all(clips["flow"][:, 0] == 0)  # flow restarts in every chunk
    finally:
        maker.close()


def test_clips_are_written_into_the_batch_buffer_once(manifest_path):
    """Each slot's frames are augmented straight into the batch array (no per-clip array stacked afterwards), with
    the same values as the clip computed on its own, padding zeroed and erasing applied."""
    m = read_manifest(manifest_path)
    c = cfg(augment={"pad": 6, "random_erasing": 1.0})
    maker = BatchMaker(m, c, {"frames", "flow"}, train=True, decoder=None)
    try:
        row = epoch_plan(m.records, c, SEED, "pk", epoch=1)[0]
        b = maker(row)
        assert b["frames"].flags.c_contiguous and b["frames"].base is None
        for slot, idx in enumerate(row.indices):
            rng = np.random.default_rng([row.seed, slot, 0])
            frame_idx = maker.sampler(m.records[idx].num_frames, rng)
            alone = maker.clip(idx, frame_idx, rng, train=True)
            np.testing.assert_array_equal(b["frames"][slot], alone["frames"])
            np.testing.assert_array_equal(b["flow"][slot], alone["flow"])
        # a buffer slot that held other data is fully overwritten (zero padding included)
        dirty = np.full_like(b["frames"][0], 255)
        rng = np.random.default_rng([row.seed, 0, 0])
        frame_idx = maker.sampler(m.records[row.indices[0]].num_frames, rng)
        again = maker.clip(row.indices[0], frame_idx, rng, train=True, out_frames=dirty)
        assert np.shares_memory(again["frames"], dirty)
        np.testing.assert_array_equal(dirty, b["frames"][0])
    finally:
        maker.close()


@pytest.mark.parametrize("resize", [None, (40, 20)])
def test_a_batch_decodes_into_the_array_it_is_given(manifest_path, resize):
    """`frames_out` (a row of a decoding task's array) receives the batch's frames (resized first where the
    augmentation resizes); the batch equals one made on its own; an array of another shape is refused."""
    m = read_manifest(manifest_path)
    sizes = {} if resize is None else {"resize_height": resize[0], "resize_width": resize[1]}
    c = cfg(augment={"pad": 6, "random_erasing": 1.0, **sizes})
    maker = BatchMaker(m, c, {"frames"}, train=True, decoder=None)
    try:
        row = epoch_plan(m.records, c, SEED, "pk", epoch=2)[1]
        assert maker.frames_shape(4)[2:4] == (resize or (32, 16))
        task = np.full((3, *maker.frames_shape(len(row.indices))), 255, dtype=np.uint8)
        got = maker(row, frames_out=task[1])
        assert np.shares_memory(got["frames_hwc"], task[1]) and not np.shares_memory(got["frames_hwc"], task[0])
        want = maker(row)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert (task[0] == 255).all() and (task[2] == 255).all()
        with pytest.raises(ReidError, match="frames_out has shape"):
            maker(row, frames_out=task[1][:, :2])
    finally:
        maker.close()


def test_resized_frames_finished_on_the_device_equal_the_actors_augmentation(manifest_path):
    """With a resize before the crop (adfta's 288x144 -> 256x128, scaled down): the actors ship the resized clips,
    the worker's crop of them is the clip the actors make when they augment themselves (flow keeps them at it)."""
    m = read_manifest(manifest_path)
    c = cfg(augment={"pad": 3, "random_erasing": 0.5, "resize_height": 36, "resize_width": 18})
    for row in epoch_plan(m.records, c, SEED, "pk", epoch=0)[:3]:
        shipped = make_batch(row, m, c, {"frames"}, train=True)
        assert shipped["frames_hwc"].shape[2:4] == (36, 18)
        np.testing.assert_array_equal(batch_frames(shipped), make_batch(row, m, c, {"frames", "flow"}, True)["frames"])
