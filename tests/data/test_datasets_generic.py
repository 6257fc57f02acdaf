"""The generic layouts for users' own data (folders or a CSV) and the synthetic manifest reader."""

from collections import Counter

import pytest
from layout_fixtures import write_image

from reid.data.datasets import load_dataset
from reid.data.records import Manifest, TrackletRecord, write_manifest
from reid.errors import ReidError


def _folders(root):
    for split, pid, cam, t, n in [("train", 3, 1, "t01", 3), ("train", 3, 2, "t02", 2), ("query", 7, 1, "a", 2),
                                  ("gallery", 7, 2, "b", 2), ("gallery", -1, 2, "junk3", 1)]:
        for f in (10, 9, 100)[:n]:
            write_image(root / split / str(pid) / str(cam) / t / f"img_{f}.png", f)


def test_folder_layout(tmp_path):
    _folders(tmp_path)
    m = load_dataset("generic", tmp_path)
    assert Counter(r.role for r in m.records) == {"train": 2, "query": 1, "gallery": 2}
    r = m.records[0]
    assert (r.pid, r.camid, r.tracklet_no, r.tracklet_id) == (3, 1, 1, "train-3-1-t01")
    assert r.frames == ("train/3/1/t01/img_9.png", "train/3/1/t01/img_10.png", "train/3/1/t01/img_100.png")
    assert {r.pid for r in m.records} == {3, 7, -1}
    assert m.meta["layout"] == "folders"


def test_folder_layout_errors(tmp_path):
    with pytest.raises(ReidError, match="tracklets.csv"):
        load_dataset("generic", tmp_path)
    write_image(tmp_path / "train" / "bob" / "1" / "t" / "0.png")
    with pytest.raises(ReidError, match="'bob'.*not an integer"):
        load_dataset("generic", tmp_path)


def _video(path, n):
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), i * 10, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_csv_layout(tmp_path):
    _folders(tmp_path)
    _video(tmp_path / "vids" / "a.mp4", 12)
    (tmp_path / "tracklets.csv").write_text(
        "tracklet_id,pid,camid,role,path,frame_start,num_frames,gender,top color\n"
        "x1,3,1,train,train/3/1/t01,,,1,4\n"
        "x2,7,2,gallery,vids/a.mp4,2,5,,\n"
        "x3,7,1,query,vids/a.mp4,,,0,-1\n"
        "x4,8,1,query,missing/folder,,,,\n")
    m = load_dataset("generic", tmp_path)
    recs = {r.tracklet_id: r for r in m.records}
    assert set(recs) == {"x1", "x2", "x3"} and m.meta["empty_tracklets"] == "1"
    assert recs["x1"].num_frames == 3 and recs["x1"].attributes == {"gender": 1, "top color": 4}
    assert (recs["x2"].video, recs["x2"].frame_start, recs["x2"].num_frames) == ("vids/a.mp4", 2, 5)
    assert recs["x3"].num_frames == 12 and recs["x3"].attributes == {"gender": 0}
    assert m.attributes.column_names == ["gender", "top color"]
    assert [c.num_classes for c in m.attributes.columns] == [2, 5]


@pytest.mark.parametrize("line, match", [
    ("x,1,1,probe,train/3/1/t01", "role 'probe'"),
    ("x,one,1,train,train/3/1/t01", "'pid' must be an integer"),
    ("x,1,1,train,/etc", "outside the dataset root"),
    ("x,1,1,train,vids/a.mp4,0,99", "has 12 frames"),
])
def test_csv_errors(tmp_path, line, match):
    _folders(tmp_path)
    _video(tmp_path / "vids" / "a.mp4", 12)
    (tmp_path / "t.csv").write_text("tracklet_id,pid,camid,role,path,frame_start,num_frames\n" + line + "\n")
    with pytest.raises(ReidError, match=match):
        load_dataset("generic", tmp_path, csv=tmp_path / "t.csv")


def test_csv_header_errors(tmp_path):
    (tmp_path / "tracklets.csv").write_text("id,pid,camid,role,path\n")
    with pytest.raises(ReidError, match="missing columns \\['tracklet_id'\\]"):
        load_dataset("generic", tmp_path)
    (tmp_path / "tracklets.csv").write_text("tracklet_id,pid,camid,role,path,colour\n")
    with pytest.raises(ReidError, match="unknown columns \\['colour'\\]"):
        load_dataset("generic", tmp_path)


def test_synthetic_reads_the_generators_manifest(tmp_path):
    with pytest.raises(ReidError, match="manifest.parquet"):
        load_dataset("synthetic", tmp_path)
    write_image(tmp_path / "f" / "0.png")
    rec = TrackletRecord(tracklet_id="s0", pid=0, camid=1, dataset="synthetic", role="train", num_frames=1,
                         frames=("f/0.png",))
    write_manifest(Manifest([rec], tmp_path, "synthetic"))
    m = load_dataset("synthetic", tmp_path)
    assert m.records == [rec] and m.root == tmp_path


def test_registry_names_known_datasets(tmp_path):
    with pytest.raises(ReidError, match="known datasets: mars, ilidsvid, prid2011, duke, generic, synthetic"):
        load_dataset("market1501", tmp_path)
    with pytest.raises(ReidError, match="accepts \\['csv'\\]"):
        load_dataset("generic", tmp_path, trial=1)
