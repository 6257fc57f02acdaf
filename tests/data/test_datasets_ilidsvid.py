"""iLIDS-VID: split semantics (1-based indices into the sorted person folders, first half test) and frame order."""

from collections import Counter

import numpy as np
import pytest
from layout_fixtures import make_ilids
from scipy.io import savemat

from reid.data.datasets import load_dataset
from reid.data.datasets.ilidsvid import load_ilidsvid
from reid.errors import ReidError

PERSONS = [1, 2, 5, 10, 11, 40]  # gaps, and 'person010' < 'person005' would be false only numerically


def test_roles_follow_the_split_matrix(tmp_path):
    ls_set = make_ilids(tmp_path, PERSONS, trials=2)
    sorted_dirs = sorted(f"person{p:03d}" for p in PERSONS)
    for trial in range(2):
        m = load_ilidsvid(tmp_path, trial=trial)
        test = {sorted_dirs[i - 1] for i in ls_set[trial, :3].astype(int)}
        for r in m.records:
            person = r.tracklet_id.split("-")[-1]
            if person in test:
                assert r.role == ("query" if r.camid == 1 else "gallery")
            else:
                assert r.role == "train"
            assert r.pid == int(person[6:])
        assert Counter(r.role for r in m.records) == {"train": 6, "query": 3, "gallery": 3}
        assert m.meta["trial"] == str(trial)


def test_frames_sorted_numerically(tmp_path):
    make_ilids(tmp_path, [1, 2], frames=4, padded=False)  # frame numbers 7, 100, 12, 9 written unpadded
    m = load_dataset("ilidsvid", tmp_path, trial=0)
    r = m.records[0]
    assert [f.rsplit("_", 1)[1] for f in r.frames] == ["7.png", "9.png", "12.png", "100.png"]
    assert r.frames[0] == "i-LIDS-VID/sequences/cam1/person001/cam1_person001_7.png"
    assert m.resolve(r.frames[0]).is_file()


def test_bad_inputs(tmp_path):
    with pytest.raises(ReidError, match="sequences"):
        load_ilidsvid(tmp_path)
    make_ilids(tmp_path, PERSONS, trials=2)
    with pytest.raises(ReidError, match="trial 5 does not exist"):
        load_ilidsvid(tmp_path, trial=5)
    split = tmp_path / "train-test people splits" / "train_test_splits_ilidsvid.mat"
    savemat(split, {"ls_set": np.asarray([[1, 2, 3, 4, 5, 99]], float)})
    with pytest.raises(ReidError, match="person 99"):
        load_ilidsvid(tmp_path)
    savemat(split, {"other": np.zeros((1, 2))})
    with pytest.raises(ReidError, match="no variable 'ls_set'"):
        load_ilidsvid(tmp_path)
    split.unlink()
    with pytest.raises(ReidError, match="train_test_splits_ilidsvid.mat"):
        load_ilidsvid(tmp_path)
    with pytest.raises(ReidError, match="does not take option"):
        load_dataset("ilidsvid", tmp_path, protocol="legacy")


def test_empty_sequence_is_dropped_and_counted(tmp_path):
    make_ilids(tmp_path, PERSONS, trials=1)
    folder = tmp_path / "i-LIDS-VID" / "sequences" / "cam2" / "person005"
    for f in folder.iterdir():
        f.unlink()
    m = load_ilidsvid(tmp_path)
    assert m.meta["empty_tracklets"] == "1"
    assert "ilidsvid-cam2-person005" not in {r.tracklet_id for r in m.records}


def test_generator_ilidsvid_layout(tmp_path):
    import json

    from reid.data.synth import write_layout

    root = write_layout(tmp_path / "ilids", "ilidsvid", seed=0, height=64, width=32, max_len=6)
    facts = json.loads((root / "layout.json").read_text())
    half = facts["persons"] // 2
    for trial in range(facts["trials"]):
        m = load_dataset("ilidsvid", root, trial=trial)
        assert Counter(r.role for r in m.records) == {"train": 2 * half, "query": half, "gallery": half}
        assert {r.tracklet_id.split("-")[-1] for r in m.records} == set(facts["person_dirs"])
    for r in m.records:
        numbers = [int(f.rsplit("_", 1)[1][:5]) for f in r.frames]
        assert numbers == sorted(numbers) and len(numbers) == r.num_frames


def test_missing_camera_folder_is_counted(tmp_path):
    import shutil

    make_ilids(tmp_path, PERSONS, trials=1)
    shutil.rmtree(tmp_path / "i-LIDS-VID" / "sequences" / "cam2" / "person040")
    m = load_ilidsvid(tmp_path)
    assert m.meta["empty_tracklets"] == "1" and len(m.records) == 11


def test_warnings_are_capped(caplog):
    from reid.data.datasets.common import MAX_WARNINGS, LoadStats

    stats = LoadStats()
    with caplog.at_level("WARNING", logger="reid.data"):
        for i in range(MAX_WARNINGS + 30):
            stats.frames_missing(f"t{i}", 2, "x.png")
    assert stats.missing_frames == 2 * (MAX_WARNINGS + 30)
    assert len(caplog.records) == MAX_WARNINGS + 1  # the last one says the rest are only counted
