"""DukeMTMC-VideoReID: both file-name formats, tracklets starting at F0002, query copies removed from the gallery."""

from collections import Counter

import pytest
from layout_fixtures import make_duke_tracklet

from reid.data.datasets import load_dataset
from reid.data.datasets.duke import load_duke, parse_frame_name
from reid.errors import ReidError


def _tree(root):
    make_duke_tracklet(root, "train", 1, 3, 6, [1, 2, 3])
    make_duke_tracklet(root, "train", 1, 4, 2, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11], underscores=False)  # starts at F0002
    make_duke_tracklet(root, "query", 5, 7, 1, [1, 2])
    make_duke_tracklet(root, "gallery", 5, 7, 1, [1, 2])  # copy of the query
    make_duke_tracklet(root, "gallery", 5, 8, 3, [1, 2, 3])
    make_duke_tracklet(root, "gallery", 9, 9, 4, [1])


def test_parse_both_name_formats():
    assert parse_frame_name("0001_C6_F0099_X30823.jpg") == (1, 6, 99)
    assert parse_frame_name("0001C6F0099X30823.jpg") == (1, 6, 99)
    with pytest.raises(ReidError, match="0001_C6_F0099_X30823"):
        parse_frame_name("frame_0001.jpg")


def test_layout(tmp_path):
    _tree(tmp_path)
    m = load_duke(tmp_path)
    assert Counter(r.role for r in m.records) == {"train": 2, "query": 1, "gallery": 2}
    assert m.meta["gallery_query_duplicates_dropped"] == "1"
    late = next(r for r in m.records if r.tracklet_no == 4)
    assert late.num_frames == 10 and late.camid == 2 and late.pid == 1
    # numeric F order (F0010 after F0009) and the last frame kept although the tracklet starts at F0002
    assert [parse_frame_name(f.rsplit("/", 1)[1])[2] for f in late.frames] == list(range(2, 12))
    assert late.frames[0] == "train/0001/0004/0001C2F0002X01002.jpg"
    q = next(r for r in m.records if r.role == "query")
    assert (q.pid, q.camid, q.tracklet_no, q.tracklet_id) == (5, 1, 7, "duke-query-0005-0007")
    assert all(m.resolve(f).is_file() for r in m.records for f in r.frames)


def test_attributes_join(tmp_path):
    _tree(tmp_path)
    csv = tmp_path / "duke_attributes.csv"
    header = ("person_id,camera_id,tracklets_id,motion,pose,occlusion,cut-out,muti-person,background-dominant,"
              "target-change,target-miss,wrong-target,backpack,bag,handbag,boots,gender,hat,shoes,top,"
              "bottom color,top color")
    rows = ["1,6,3,0,1,0,0,0,0,0,0,0,1,0,0,0,1,0,1,0,7,8", "5,1,7,0,2,0,0,0,0,0,0,0,0,1,0,0,0,0,1,0,3,2"]
    csv.write_text(header + "\n" + "\n".join(rows) + "\n")
    m = load_dataset("duke", tmp_path, attributes=csv)
    with_attrs = {r.tracklet_id: r.attributes for r in m.records if r.attributes}
    assert set(with_attrs) == {"duke-train-0001-0003", "duke-query-0005-0007"}
    assert with_attrs["duke-train-0001-0003"]["bottom color"] == 7
    assert m.meta["attributes_unmatched"] == "3"


def test_bad_inputs(tmp_path):
    with pytest.raises(ReidError, match="train"):
        load_duke(tmp_path)
    _tree(tmp_path)
    (tmp_path / "train" / "0001" / "0003" / "oops.jpg").write_bytes(b"")
    with pytest.raises(ReidError, match="oops.jpg"):
        load_duke(tmp_path)


def test_empty_tracklet_dropped(tmp_path):
    _tree(tmp_path)
    (tmp_path / "gallery" / "0009" / "0010").mkdir()
    m = load_duke(tmp_path)
    assert m.meta["empty_tracklets"] == "1" and len(m.records) == 5


@pytest.mark.parametrize("old_names", [False, True])
def test_generator_duke_layout(tmp_path, old_names):
    import json

    from reid.data.synth import write_layout

    root = write_layout(tmp_path / "duke", "duke", seed=0, height=64, width=32, max_len=6, old_names=old_names)
    facts = json.loads((root / "layout.json").read_text())
    m = load_dataset("duke", root, attributes=root / "duke_attributes.csv")
    roles = Counter(r.role for r in m.records)
    t = facts["tracklets"]
    assert (roles["train"], roles["query"]) == (t["train"], t["query"])
    assert roles["gallery"] == t["gallery"] - t["query"]
    assert m.meta["gallery_query_duplicates_dropped"] == str(t["query"])
    assert len({r.pid for r in m.records if r.role == "query"}) == facts["query_ids"]
    assert m.meta["attributes_matched"] == str(len(m.records)) and m.meta["attributes_unmatched"] == "0"
    for r in m.records:
        fs = [parse_frame_name(f.rsplit("/", 1)[1])[2] for f in r.frames]
        assert fs == list(range(fs[0], fs[0] + r.num_frames))
    assert any(parse_frame_name(r.frames[0].rsplit("/", 1)[1])[2] == 2 for r in m.records)  # F0002 starts
