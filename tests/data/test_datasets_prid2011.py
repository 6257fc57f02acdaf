"""PRID-2011: the real splits JSON, the .mat rule (>= 27 frames in both cameras), and the legacy random split."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from layout_fixtures import make_prid, write_prid_json
from scipy.io import savemat

from reid.data.datasets import load_dataset
from reid.data.datasets.prid2011 import load_prid2011, read_prid_splits_json
from reid.errors import ReidError

REAL_JSON = Path("/work/shared/annotations/prid2011/splits_prid2011.json")


@pytest.mark.skipif(not REAL_JSON.is_file(), reason="real PRID splits not present")
def test_real_splits_json():
    trials = read_prid_splits_json(REAL_JSON)
    assert len(trials) == 10
    for t in trials:
        assert len(t["train"]) == 89 and len(t["test"]) == 89
        assert not set(t["train"]) & set(t["test"])
    persons = {p for t in trials for p in t["train"] + t["test"]}
    assert len(persons) == 178
    assert all(set(t["train"]) | set(t["test"]) == persons for t in trials)
    assert max(int(p[-4:]) for p in persons) <= 198 and "person_0006" not in persons


def _tree(root):
    # persons 1..6 in both cameras (person 3 too short in cam_b), 7 only in cam_a, 201 in both (different people)
    make_prid(root, {1: 3, 2: 3, 3: 3, 4: 3, 5: 3, 6: 3, 7: 2, 201: 2}, {1: 3, 2: 3, 3: 1, 4: 3, 5: 3, 6: 3, 201: 2})


def test_json_splits_roles(tmp_path):
    _tree(tmp_path)
    write_prid_json(tmp_path / "splits_prid2011.json", [([1, 2], [4, 5]), ([4, 5], [1, 2])])
    m = load_prid2011(tmp_path, trial=1)
    role = {r.tracklet_id: r.role for r in m.records}
    assert role["prid2011-cam_a-person_0001"] == "query" and role["prid2011-cam_b-person_0001"] == "gallery"
    assert role["prid2011-cam_a-person_0004"] == "train" and role["prid2011-cam_b-person_0004"] == "train"
    assert role["prid2011-cam_a-person_0007"] == "unused"
    assert Counter(role.values()) == {"train": 4, "query": 2, "gallery": 2, "unused": 7}
    pids = {r.tracklet_id: r.pid for r in m.records}
    assert pids["prid2011-cam_a-person_0201"] == 201 and pids["prid2011-cam_b-person_0201"] == 1201
    assert m.records[0].frames[0] == "prid_2011/multi_shot/cam_a/person_0001/0001.png"


def test_mat_splits_use_the_min_frames_rule(tmp_path, monkeypatch):
    import reid.data.datasets.prid2011 as prid

    _tree(tmp_path)
    monkeypatch.setattr(prid, "MIN_FRAMES", 2)  # person 3 (1 frame in cam_b) drops out: 5 eligible persons
    savemat(tmp_path / "train_test_splits_prid.mat", {"ls_set": np.asarray([[1, 2, 3, 4, 5, 6]], float)})
    with pytest.raises(ReidError, match="expected 178"):  # 6 columns but 5 eligible persons
        load_prid2011(tmp_path)
    savemat(tmp_path / "train_test_splits_prid.mat", {"ls_set": np.asarray([[5, 1, 2, 3, 4]], float)})
    m = load_prid2011(tmp_path)
    test = {r.pid for r in m.records if r.role == "query"}
    train = {r.pid for r in m.records if r.role == "train"}
    # eligible sorted: persons 1, 2, 4, 5, 6 -> first half (2 columns: 5, 1) = persons 6, 1
    assert test == {6, 1} and train == {2, 4, 5}


def test_legacy_split_is_seeded_and_uses_the_first_200(tmp_path):
    _tree(tmp_path)
    a = load_dataset("prid2011", tmp_path, protocol="legacy", seed=3, trial=0)
    b = load_dataset("prid2011", tmp_path, protocol="legacy", seed=3, trial=0)
    c = load_dataset("prid2011", tmp_path, protocol="legacy", seed=3, trial=1)
    roles = lambda m: {r.tracklet_id: r.role for r in m.records}  # noqa: E731
    assert roles(a) == roles(b)
    queries = [{r.pid for r in m.records if r.role == "query"} for m in (a, c)]
    assert all(len(q) == 3 for q in queries)  # 6 persons in both cameras among the first 200 -> 3 test
    assert roles(a)["prid2011-cam_a-person_0201"] == "unused"
    assert a.meta["protocol"] == "legacy" and a.meta["seed"] == "3"
    other = [frozenset(r.pid for r in load_prid2011(tmp_path, protocol="legacy", seed=s).records if r.role == "query")
             for s in range(6)]
    assert len(set(other)) > 1  # the seed changes the split


def test_bad_inputs(tmp_path):
    with pytest.raises(ReidError, match="multi_shot"):
        load_prid2011(tmp_path)
    _tree(tmp_path)
    with pytest.raises(ReidError, match="splits_prid2011.json"):
        load_prid2011(tmp_path)
    (tmp_path / "splits_prid2011.json").write_text("{not json")
    with pytest.raises(ReidError, match="not valid JSON"):
        load_prid2011(tmp_path)
    (tmp_path / "splits_prid2011.json").write_text(json.dumps([{"train": ["person_0001"], "test": ["person_0099"]}]))
    with pytest.raises(ReidError, match="person_0099"):
        load_prid2011(tmp_path)
    with pytest.raises(ReidError, match="trial 3 does not exist"):
        load_prid2011(tmp_path, trial=3)
    with pytest.raises(ReidError, match="legacy"):
        load_prid2011(tmp_path, protocol="rcn")


def test_generator_prid2011_layout(tmp_path):
    from reid.data.synth import write_layout

    root = write_layout(tmp_path / "prid", "prid2011", seed=0, height=64, width=32, max_len=6)
    facts = json.loads((root / "layout.json").read_text())
    half = facts["split_persons"] // 2
    for trial in range(10):
        m = load_dataset("prid2011", root, trial=trial)
        roles = Counter(r.role for r in m.records)
        assert (roles["train"], roles["query"], roles["gallery"]) == (2 * half, half, half)
        assert roles["unused"] == facts["cam_a_persons"] + facts["cam_b_persons"] - 4 * half
        left_out = {r.tracklet_id.rsplit("-", 1)[1] for r in m.records if r.role == "unused" and r.pid <= 200}
        assert set(facts["left_out"]) <= left_out
    legacy = load_dataset("prid2011", root, protocol="legacy")
    # legacy rule: folders numbered <= 200 present in both cameras (here person_0001..min(a, b))
    shared = min(facts["cam_a_persons"], facts["cam_b_persons"])
    assert Counter(r.role for r in legacy.records)["query"] == shared // 2
