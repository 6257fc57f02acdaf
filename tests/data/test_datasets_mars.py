"""MARS: the real info matrices (counts from /work/shared/annotations/README.md) and a tiny on-disk copy."""

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from layout_fixtures import make_mars
from scipy.io import savemat

from reid.data.datasets import load_dataset
from reid.data.datasets.attributes_csv import join_attributes, read_attribute_csv
from reid.data.datasets.mars import (
    infer_tracklet_numbers,
    load_mars,
    mars_protocol_sets,
    mars_records_from_info,
    read_mars_info,
)
from reid.errors import ReidError

ANN = Path("/work/shared/annotations/mars")
needs_real = pytest.mark.skipif(not (ANN / "info" / "query_IDX.mat").is_file(), reason="real MARS info not present")


@pytest.fixture(scope="module")
def real_records():
    return mars_records_from_info(read_mars_info(ANN / "info"))


def _no_cross_camera_match(query, gallery) -> int:
    """Queries with no gallery tracklet of the same pid seen by another camera (naive loop)."""
    count = 0
    for q in query:
        if not any(g.pid == q.pid and g.camid != q.camid for g in gallery):
            count += 1
    return count


@needs_real
def test_real_info_counts(real_records):
    train = [r for r in real_records if r.role == "train"]
    test = [r for r in real_records if r.role in ("query", "gallery")]
    query = [r for r in real_records if r.role == "query"]
    assert (len(train), len(test), len(query)) == (8298, 12180, 1980)
    assert len({r.pid for r in train}) == 625
    assert len({r.pid for r in test if r.pid > 0}) == 634
    labels = Counter(r.pid for r in test if r.pid <= 0)
    assert labels == {0: 3248, -1: 870}
    assert len({r.pid for r in query}) == 626
    assert all(r.pid > 0 for r in query)
    assert sum(r.num_frames for r in train) == 509914
    assert sum(r.num_frames for r in test) == 681089
    assert real_records[8298].tracklet_id == "mars-test-00001"


@needs_real
@pytest.mark.parametrize("protocol, gallery_size, unmatched", [("official", 11310, 0), ("torchreid", 9330, 140)])
def test_real_protocol_sets(real_records, protocol, gallery_size, unmatched):
    query, gallery = mars_protocol_sets(real_records, protocol)
    assert len(query) == 1980
    assert len(gallery) == gallery_size
    assert all(g.pid != -1 for g in gallery)
    assert sum(g.pid == 0 for g in gallery) == 3248
    # fast path for the count, checked against the naive loop on a sample below
    cams: dict[int, set[int]] = defaultdict(set)
    for g in gallery:
        cams[g.pid].add(g.camid)
    assert sum(not (cams[q.pid] - {q.camid}) for q in query) == unmatched
    assert _no_cross_camera_match(query[:300], gallery) == sum(not (cams[q.pid] - {q.camid}) for q in query[:300])


@needs_real
def test_real_attribute_join_through_inferred_tracklet_numbers(real_records):
    table = read_attribute_csv(ANN / "mars_attributes.csv")
    records = infer_tracklet_numbers(real_records, table)
    joined = join_attributes(records, table)
    assert (joined.matched, joined.unmatched, joined.unused_rows) == (16360, 0, 0)
    assert all(r.attributes is None for r in joined.records if r.pid <= 0)
    assert all(r.attributes is not None for r in joined.records if r.pid > 0)
    assert joined.records[0].attributes == {c: table.values[(1, 1, joined.records[0].tracklet_no)][c]
                                            for c in joined.schema.column_names}


def test_protocol_unknown_is_an_error():
    with pytest.raises(ReidError, match="official"):
        mars_protocol_sets([], "mixing")


TRAIN = [(1, 1, 1, 3), (1, 2, 4, 2), (2, 1, 2, 4), (2, 3, 7, 2)]
TEST = [(-1, 1, 1, 2), (0, 2, 3, 2), (3, 1, 1, 3), (3, 2, 5, 2), (4, 4, 2, 3), (4, 5, 6, 2)]
QUERY = [3, 5]


def test_tiny_tree_roles_frames_and_tracklet_numbers(tmp_path):
    names = make_mars(tmp_path, TRAIN, TEST, QUERY)
    m = load_mars(tmp_path)
    assert m.dataset == "mars" and m.meta["missing_frames"] == "0"
    roles = Counter(r.role for r in m.records)
    assert roles == {"train": 4, "query": 2, "gallery": 4}
    r = m.records[1]
    assert (r.pid, r.camid, r.tracklet_no, r.num_frames) == (1, 2, 4, 2)
    assert r.frames == tuple(f"bbox_train/0001/{n}" for n in names["train"][3:5])
    junk = next(r for r in m.records if r.pid == -1)
    assert junk.role == "gallery" and junk.frames[0].startswith("bbox_test/00-1/")
    assert [r.tracklet_id for r in m.records if r.role == "query"] == ["mars-test-00003", "mars-test-00005"]
    for rec in m.records:
        assert all(m.resolve(f).is_file() for f in rec.frames)
    q, g = mars_protocol_sets(m.records, "official")
    assert len(q) == 2 and len(g) == 5
    assert len(mars_protocol_sets(m.records, "torchreid")[1]) == 3


def test_missing_frames_are_skipped_and_empty_tracklets_dropped(tmp_path):
    names = make_mars(tmp_path, TRAIN, TEST, QUERY)
    (tmp_path / "bbox_train" / "0001" / names["train"][1]).unlink()  # one frame of the first tracklet
    for n in names["train"][3:5]:  # every frame of the second
        (tmp_path / "bbox_train" / "0001" / n).unlink()
    m = load_dataset("mars", tmp_path)
    assert m.meta["missing_frames"] == "3" and m.meta["empty_tracklets"] == "1"
    assert m.records[0].num_frames == 2 and len(m.records[0].frames) == 2
    assert "mars-train-00002" not in {r.tracklet_id for r in m.records}


def test_attributes_option_joins_by_tracklet_number(tmp_path):
    make_mars(tmp_path, TRAIN, TEST, QUERY)
    csv = tmp_path / "attrs.csv"
    header = ("person_id,camera_id,tracklets_id,motion,pose,occlusion,cut-out,multi-person,background-dominant,"
              "target-change,target-miss,wrong-target,top color,bottom color,age,top length,bottom length,"
              "shoulder bag,backpack,hat,hand bag,hair,gender,bottom type")
    rows = [f"{p},{c},{t},1,4,0,0,0,0,0,0,0,{t % 9},2,1,1,0,0,1,0,0,1,{p % 2},1" for p, c, t, _ in TRAIN + TEST if p > 0]
    csv.write_text(header + "\n" + "\n".join(rows) + "\n")
    m = load_dataset("mars", tmp_path, attributes=csv)
    assert m.meta["attributes_matched"] == str(len(rows))
    r = m.records[3]
    assert r.attributes["top color"] == 7 and r.attributes["pose"] == 4 and r.attributes["gender"] == 0
    assert "occlusion" not in r.attributes
    assert {g.name for g in m.attributes.by_kind("irrelevant")} == {"motion", "pose"}


def test_bad_inputs_name_the_expected_path(tmp_path):
    with pytest.raises(ReidError, match="expected a directory at .*nowhere"):
        load_mars(tmp_path / "nowhere")
    make_mars(tmp_path, TRAIN, TEST, QUERY)
    (tmp_path / "info" / "query_IDX.mat").unlink()
    with pytest.raises(ReidError, match="query_IDX.mat"):
        load_mars(tmp_path)


def test_name_list_that_does_not_match_the_info_is_an_error(tmp_path):
    make_mars(tmp_path, TRAIN, TEST, QUERY)
    rows = np.asarray([[1, 3, 1, 1], [4, 5, 9, 2]], np.int32)  # pid 9 does not match the names (pid 1)
    savemat(tmp_path / "info" / "tracks_train_info.mat", {"track_train_info": rows})
    with pytest.raises(ReidError, match="pid 9"):
        load_mars(tmp_path)
    (tmp_path / "info" / "train_name.txt").write_text("0001C1T0001F001.jpg\n")
    with pytest.raises(ReidError, match="do not belong together"):
        load_mars(tmp_path)


def test_missing_name_list_and_bbox_folder(tmp_path):
    make_mars(tmp_path, TRAIN, TEST, QUERY, write_frames=False)
    with pytest.raises(ReidError, match="bbox_train"):
        load_mars(tmp_path)
    m = load_mars(tmp_path, check_frames=False)
    assert len(m.records) == 10
    (tmp_path / "info" / "test_name.txt").unlink()
    with pytest.raises(ReidError, match="test_name.txt"):
        load_mars(tmp_path)


def test_one_directory_listing_per_identity_folder(tmp_path, monkeypatch):
    import os

    import reid.data.datasets.mars as mars_module

    make_mars(tmp_path, TRAIN, TEST, QUERY)
    calls = []
    real_scandir = os.scandir

    def counting_scandir(path):
        calls.append(Path(path).name)
        return real_scandir(path)

    monkeypatch.setattr(mars_module.os, "scandir", counting_scandir)
    m = load_mars(tmp_path)
    assert sum(r.num_frames for r in m.records) == 25
    assert sorted(calls) == sorted(["0001", "0002", "00-1", "0000", "0003", "0004"])


def test_generator_mars_layout(tmp_path):
    import json

    from reid.data.synth import write_layout

    root = write_layout(tmp_path / "mars", "mars", seed=0, height=64, width=32, max_len=6)
    facts = json.loads((root / "layout.json").read_text())
    m = load_dataset("mars", root, attributes=root / "mars_attributes.csv")
    roles = Counter(r.role for r in m.records)
    assert roles["train"] == facts["train_tracklets"] and roles["query"] == facts["query_tracklets"]
    assert roles["query"] + roles["gallery"] == facts["test_tracklets"]
    assert len({r.pid for r in m.records if r.role == "train"}) == facts["train_ids"]
    assert len({r.pid for r in m.records if r.role != "train" and r.pid > 0}) == facts["test_ids"]
    assert Counter(r.pid for r in m.records if r.pid <= 0) == {0: facts["distractor_tracklets"],
                                                              -1: facts["junk_tracklets"]}
    real = sum(r.pid > 0 for r in m.records)
    assert m.meta["attributes_matched"] == str(real) and m.meta["attributes_unmatched"] == "0"
    assert m.meta["missing_frames"] == "0"
    for r in m.records:
        numbers = [int(f.rsplit("F", 1)[1][:3]) for f in r.frames]
        assert numbers == list(range(1, r.num_frames + 1)) and m.resolve(r.frames[-1]).is_file()
    q, g = mars_protocol_sets(m.records, "official")
    assert len(g) == facts["test_tracklets"] - facts["junk_tracklets"]
