import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from reid.config.schema import DataConfig
from reid.data.plan import PlanRow, epoch_plan, global_plan, pair_plan, pk_plan, row_seed
from reid.data.records import TrackletRecord
from reid.errors import ReidError


def make_records(num_ids=10, cams=(1, 2), per_cam=(2, 1), single_cam_ids=(), role="train"):
    recs = []
    for pid in range(100, 100 + num_ids):
        for cam, n in zip(cams, per_cam, strict=True):
            if pid in single_cam_ids and cam != cams[0]:
                continue
            for k in range(n):
                recs.append(TrackletRecord(f"{pid}_{cam}_{k}", pid, cam, "t", role, 10, video="v.mp4"))
    # a few non-train records that must never be planned
    recs.append(TrackletRecord("q", 999, 1, "t", "query", 10, video="v.mp4"))
    return recs


PK = dict(ids_per_batch=4, tracklets_per_id=4)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_pk_every_batch_is_p_ids_by_k(world_size):
    recs = make_records()
    rows = [r for rank in range(world_size)
            for r in pk_plan(recs, seed=1, epoch=0, rank=rank, world_size=world_size, **PK)]
    assert len(rows) % world_size == 0 and len(rows) >= 3  # ceil(10 / 4) = 3, rounded up to world_size
    for row in rows:
        pids = [recs[i].pid for i in row.indices]
        assert len(pids) == 16
        counts = Counter(pids)
        assert len(counts) == 4 and set(counts.values()) == {4}
        assert all(len(set(pids[k * 4:(k + 1) * 4])) == 1 for k in range(4))  # slots grouped by identity
        assert all(recs[i].role == "train" for i in row.indices)


def test_pk_identities_with_few_tracklets_sampled_with_replacement():
    recs = make_records(per_cam=(1, 1))  # 2 tracklets per id < K = 4
    row = pk_plan(recs, seed=0, epoch=0, **PK)[0]
    assert len(set(row.indices)) <= 8 and len(row.indices) == 16


def test_pk_ranks_disjoint_and_cover_global_plan():
    recs = make_records(num_ids=20)
    ws = 2
    per_rank = [pk_plan(recs, seed=3, epoch=5, rank=r, world_size=ws, batches_per_epoch=7, **PK) for r in range(ws)]
    assert [len(p) for p in per_rank] == [4, 4]  # 7 rounded up to a multiple of 2
    batches = [{row.batch for row in p} for p in per_rank]
    assert not batches[0] & batches[1]
    assert batches[0] | batches[1] == set(range(8))
    assert batches[1] == {1, 3, 5, 7}


def test_pk_covers_each_identity_about_once():
    recs = make_records(num_ids=12)
    rows = pk_plan(recs, seed=0, epoch=0, **PK)
    assert len(rows) == 3
    seen = Counter(recs[r.indices[k * 4]].pid for r in rows for k in range(4))
    assert set(seen.values()) == {1} and len(seen) == 12


def test_pk_changes_with_epoch_not_with_call():
    recs = make_records()
    a = pk_plan(recs, seed=0, epoch=0, **PK)
    assert a == pk_plan(recs, seed=0, epoch=0, **PK)
    assert a != pk_plan(recs, seed=0, epoch=1, **PK)
    assert a != pk_plan(recs, seed=1, epoch=0, **PK)
    assert len({r.seed for r in a}) == len(a) and a[1].seed == row_seed(0, 0, 1)


def test_plan_is_identical_in_another_process():
    recs = make_records()
    mine = [r.to_dict() for r in pk_plan(recs, seed=7, epoch=2, world_size=2, rank=1, **PK)]
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from test_plan import make_records, PK;"
        "from reid.data.plan import pk_plan;"
        "print(json.dumps([r.to_dict() for r in pk_plan(make_records(), seed=7, epoch=2, world_size=2, rank=1, **PK)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert json.loads(out.stdout) == mine
    assert PlanRow.from_dict(mine[0]) == pk_plan(recs, seed=7, epoch=2, world_size=2, rank=1, **PK)[0]


def test_pk_errors():
    with pytest.raises(ReidError, match="at least data.ids_per_batch=4"):
        pk_plan(make_records(num_ids=3), seed=0, epoch=0, **PK)
    with pytest.raises(ReidError, match="no tracklets with role"):
        pk_plan(make_records(role="query"), seed=0, epoch=0, **PK)
    with pytest.raises(ReidError, match="rank"):
        pk_plan(make_records(), seed=0, epoch=0, rank=2, world_size=2, **PK)


def test_pairs_positive_cross_camera_negative_cross_identity():
    recs = make_records(num_ids=8, single_cam_ids=(100,))
    rows = pair_plan(recs, seed=0, epoch=0, pairs_per_batch=6)
    assert len(rows) == 3  # 7 identities with two cameras: ceil(2 * 7 / 6)
    for row in rows:
        n = len(row.pair_same)
        assert n == 6 and len(row.indices) == 12 and sum(row.pair_same) == 3
        for i, same in enumerate(row.pair_same):
            a, b = recs[row.indices[i]], recs[row.indices[n + i]]
            if same:
                assert a.pid == b.pid and a.camid != b.camid and a.pid != 100
            else:
                assert a.pid != b.pid


def test_pairs_odd_count_alternates():
    recs = make_records(num_ids=6)
    rows = pair_plan(recs, seed=0, epoch=0, pairs_per_batch=1, world_size=2)
    assert len(rows) % 2 == 0
    assert [r.pair_same for r in rows] == [(1.0,), (0.0,)] * (len(rows) // 2)  # each rank alternates
    other = pair_plan(recs, seed=0, epoch=0, pairs_per_batch=1, world_size=2, rank=1)
    assert [a.pair_same[0] + b.pair_same[0] for a, b in zip(rows, other, strict=True)] == [1.0] * len(rows)
    all_rows = pair_plan(recs, seed=0, epoch=0, pairs_per_batch=1)
    assert [r.pair_same[0] for r in all_rows[:4]] == [1.0, 0.0, 1.0, 0.0]


def test_pairs_need_two_cameras():
    recs = make_records(num_ids=4, cams=(1,), per_cam=(3,))
    with pytest.raises(ReidError, match="two different cameras"):
        pair_plan(recs, seed=0, epoch=0, pairs_per_batch=4)


def test_epoch_plan_from_config():
    data = DataConfig(ids_per_batch=2, tracklets_per_id=3, batches_per_epoch=3)
    recs = make_records()
    rows = epoch_plan(recs, data, 5, "pk", epoch=1, rank=1, world_size=2)
    assert [r.batch for r in rows] == [1, 3] and all(len(r.indices) == 6 for r in rows)
    assert [r.batch for r in global_plan(recs, data, 5, "pk", 1, world_size=2)] == [0, 1, 2, 3]
    # the rows are those of the plan function with the section's sizes and the seed passed beside it
    want = pk_plan(recs, seed=5, epoch=1, rank=1, world_size=2, ids_per_batch=2, tracklets_per_id=3,
                   batches_per_epoch=3)
    assert rows == want and epoch_plan(recs, data, 6, "pk", epoch=1, rank=1, world_size=2) != want
    with pytest.raises(ReidError, match="unknown batching"):
        epoch_plan(recs, data, 5, "triplets", epoch=0)


def _negatives(recs, rows):
    out = []
    for row in rows:
        n = len(row.pair_same)
        out += [(recs[row.indices[i]], recs[row.indices[n + i]]) for i in range(n) if not row.pair_same[i]]
    return out


def test_pairs_cross_cameras_every_pair_spans_two_cameras():
    # iLIDS-VID / PRID shape: one tracklet per camera; plus a MARS-like identity with 3 cameras and repeats
    recs = make_records(num_ids=12, per_cam=(1, 1))
    recs += [TrackletRecord(f"200_{c}_{k}", 200, c, "t", "train", 10, video="v.mp4") for c in (1, 2, 3) for k in (0, 1)]
    rows = [r for e in range(3) for r in pair_plan(recs, seed=e, epoch=e, pairs_per_batch=4, pair_cameras="cross")]
    for row in rows:
        n = len(row.pair_same)
        for i in range(n):
            a, b = recs[row.indices[i]], recs[row.indices[n + i]]
            assert a.camid != b.camid  # positives AND negatives: side A from one camera, side B from another
            assert (a.pid == b.pid) == bool(row.pair_same[i])
    negs = _negatives(recs, rows)
    assert len(negs) >= 40 and {a.camid for a, _ in negs} >= {1, 2}  # side A is not stuck on one camera


def test_pairs_any_cameras_draws_same_camera_negatives():
    # the knob does something: the "any" rule (the old behaviour) pairs two camera-1 tracklets now and then,
    # which the "cross" test above forbids
    recs = make_records(num_ids=12, per_cam=(1, 1))
    rows = [r for e in range(3) for r in pair_plan(recs, seed=e, epoch=e, pairs_per_batch=4, pair_cameras="any")]
    negs = _negatives(recs, rows)
    assert all(a.pid != b.pid for a, b in negs)
    assert any(a.camid == b.camid for a, b in negs)


def test_pairs_cross_cameras_with_a_one_camera_identity():
    # identity 100 is seen by camera 1 only: its negatives take side B from camera 2; identity 101 is the only one
    # camera 2 saw besides the others, so nothing is impossible and the plan still builds
    recs = make_records(num_ids=5, per_cam=(1, 1), single_cam_ids=(100,))
    rows = pair_plan(recs, seed=0, epoch=0, pairs_per_batch=6, batches_per_epoch=20, pair_cameras="cross")
    negs = _negatives(recs, rows)
    assert all(a.camid != b.camid and a.pid != b.pid for a, b in negs)
    assert any(100 in (a.pid, b.pid) for a, b in negs)


def test_global_plan_reads_pair_cameras_from_config():
    recs = make_records(num_ids=12, per_cam=(1, 1))
    base = {"pairs_per_batch": 4, "batches_per_epoch": 12}
    cross = global_plan(recs, DataConfig(**base), 0, "pairs", 0, 1)  # positional call, as the pipeline
    anyc = global_plan(recs, DataConfig(**base, pair_cameras="any"), 0, "pairs", 0)
    assert DataConfig().pair_cameras == "cross"
    assert all(a.camid != b.camid for a, b in _negatives(recs, cross))
    assert any(a.camid == b.camid for a, b in _negatives(recs, anyc))
    assert [sum(r.pair_same) for r in cross] == [sum(r.pair_same) for r in anyc] == [2.0] * 12  # same balance
