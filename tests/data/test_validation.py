"""The validation split held out of the training identities (issue 17, item 7): disjoint from every training batch
and from the test split, deterministic, and the same on the real datasets' layouts."""

from __future__ import annotations

import numpy as np
import pytest

from reid.config.schema import DataConfig
from reid.data.plan import global_plan
from reid.data.records import Manifest, TrackletRecord, read_manifest, relabel
from reid.data.validation import (
    choose_validation_pids,
    holdout_count,
    validation_split,
    with_validation_split,
    write_validation_manifest,
)
from reid.errors import ReidError
from reid.evaluation.metrics import evaluate_ranking
from reid.evaluation.protocols import get_protocol


def _records(train_ids: int = 20, test_ids: int = 6, cams: int = 3, per_cam: int = 2) -> list[TrackletRecord]:
    """MARS-like roles: train pids 1..N, test pids N+1..N+M (one query per identity, the rest gallery)."""
    out = []
    for pid in range(1, train_ids + test_ids + 1):
        test = pid > train_ids
        for c in range(cams):
            for k in range(per_cam):
                role = "train" if not test else ("query" if (c, k) == (0, 0) else "gallery")
                out.append(TrackletRecord(tracklet_id=f"{pid}-{c}-{k}", pid=pid, camid=c + 1, dataset="synthetic",
                                          role=role, num_frames=8, frames=tuple(f"f{i}.jpg" for i in range(8))))
    return out


def _manifest(records, tmp_path=None) -> Manifest:
    return Manifest(records=records, root=tmp_path or __import__("pathlib").Path("."), dataset="synthetic")


def test_holdout_count_fraction_count_and_off():
    assert holdout_count(625, 0.1) == 63 and holdout_count(60, 0.1) == 6
    assert holdout_count(12, 0.1) == 2  # at least two identities: with one, every gallery item is a match
    assert holdout_count(100, 7) == 7 and holdout_count(100, 0) == 0
    with pytest.raises(ReidError, match="count"):
        holdout_count(100, 2.5)


def test_validation_identities_are_disjoint_from_training_batches_and_the_test_split():
    records = _records()
    m = with_validation_split(_manifest(records), 0.2)
    held = {r.pid for r in m.records if r.extra.get("val_split") == "1"}
    assert len(held) == 4 and held <= set(range(1, 21))
    # held-out records leave training: no P x K batch of any epoch draws them, and the classifier shrinks
    data = DataConfig(ids_per_batch=4, tracklets_per_id=2)
    for epoch in range(3):
        drawn = {m.records[i].pid for row in global_plan(m.records, data, 0, "pk", epoch) for i in row.indices}
        assert drawn and not drawn & held
    assert len(relabel(m.by_role("train"))) == 16
    # the validation split holds exactly them, query = gallery (all-vs-all); the test split is unchanged
    split = validation_split(m.records)
    assert {m.records[i].pid for i in split.query} == held and np.array_equal(split.query, split.gallery)
    test = get_protocol("synthetic").split(m.records)
    before = get_protocol("synthetic").split(records)
    assert np.array_equal(test.query, before.query) and np.array_equal(test.gallery, before.gallery)
    test_pids = {m.records[i].pid for i in np.concatenate([test.query, test.gallery])}
    assert not test_pids & held
    # every validation query has a match from another camera
    r = evaluate_ranking(np.random.default_rng(0).random((split.query.size, split.gallery.size)),
                         **split.ids(m.records))
    assert r.num_valid_queries == split.query.size == 4 * 3 * 2


def test_the_draw_is_deterministic_and_skips_single_camera_identities():
    records = _records()
    single = [TrackletRecord(tracklet_id=f"s{p}", pid=p, camid=1, dataset="synthetic", role="train", num_frames=4,
                             frames=("a.jpg",)) for p in range(100, 140)]
    held = choose_validation_pids(records + single, 0.5)
    assert held == choose_validation_pids(records + single, 0.5)
    assert all(p < 100 for p in held) and len(held) == 20  # 30 asked for, 20 eligible
    assert len(choose_validation_pids(records, 0.95)) == 20 - 2  # two identities always stay to train on
    assert choose_validation_pids(records, 0) == []


def test_too_few_identities_train_without_a_split():
    m = _manifest(_records(train_ids=3))
    assert with_validation_split(m, 0.1) is m and validation_split(m.records) is None


def test_derived_manifest_keeps_root_and_indices(tmp_path):
    from reid.data.records import write_manifest

    data = tmp_path / "data"
    src = write_manifest(_manifest(_records(), data))
    derived = write_validation_manifest(src, 0.1, tmp_path / "run")
    assert derived != src and derived.parent == (tmp_path / "run").resolve()
    a, b = read_manifest(src), read_manifest(derived)
    assert b.root.resolve() == data.resolve()
    assert [r.tracklet_id for r in a.records] == [r.tracklet_id for r in b.records]
    assert validation_split(b.records) is not None
    assert write_validation_manifest(src, 0, tmp_path / "run") == src


def test_real_dataset_layouts_get_a_split(tmp_path):
    """iLIDS-VID / PRID-2011 style: every training identity is seen by both cameras; hold-outs come from the
    trial's training identities and the trial's probe / gallery split is untouched."""
    recs = []
    for pid in range(1, 21):
        for cam in (1, 2):
            role = "train" if pid <= 10 else ("query" if cam == 1 else "gallery")
            recs.append(TrackletRecord(tracklet_id=f"{pid}-{cam}", pid=pid, camid=cam, dataset="ilidsvid",
                                       role=role, num_frames=5, frames=("a.png",)))
    m = with_validation_split(Manifest(records=recs, root=tmp_path, dataset="ilidsvid"), 0.2)
    split = validation_split(m.records)
    assert len({m.records[i].pid for i in split.query}) == 2 and split.query.size == 4
    test = get_protocol("ilidsvid").split(m.records)
    assert test.query.size == 10 and test.gallery.size == 10
