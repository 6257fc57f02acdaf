"""The real-dataset layout writers and the source-domain attribute set (the loaders' own tests live elsewhere)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from reid.data.synth import BINARY_GROUPS, binary_attributes, make_config, write_layout
from reid.data.synth.source_domain import BINARY_NAMES, generate_source_domain
from reid.errors import ReidError

SMALL = dict(seed=0, height=32, width=16, max_len=6)
MARS_HEADER = ("person_id,camera_id,tracklets_id,motion,pose,occlusion,cut-out,multi-person,background-dominant,"
               "target-change,target-miss,wrong-target,top color,bottom color,age,top length,bottom length,"
               "shoulder bag,backpack,hat,hand bag,hair,gender,bottom type")
DUKE_HEADER = ("person_id,camera_id,tracklets_id,motion,pose,occlusion,cut-out,muti-person,background-dominant,"
               "target-change,target-miss,wrong-target,backpack,bag,handbag,boots,gender,hat,shoes,top,bottom color,"
               "top color")


def test_mars_layout(tmp_path):
    root = write_layout(tmp_path / "mars", "mars", **SMALL)
    facts = json.loads((root / "layout.json").read_text())
    test_dirs = {p.name for p in (root / "bbox_test").iterdir()}
    assert {"0000", "00-1"} <= test_dirs
    for split, n_tracks in (("train", facts["train_tracklets"]), ("test", facts["test_tracklets"])):
        names = (root / "info" / f"{split}_name.txt").read_text().split()
        assert names == sorted(names)
        on_disk = sorted(p.name for p in (root / f"bbox_{split}").glob("*/*.jpg"))
        assert sorted(names) == on_disk
        info = loadmat(root / "info" / f"tracks_{split}_info.mat")[f"track_{split}_info"]
        assert info.shape == (n_tracks, 4) and info[0, 0] == 1 and info[-1, 1] == len(names)
        for start, end, pid, cam in info:
            block = names[start - 1:end]
            pid_s = "00-1" if pid == -1 else f"{pid:04d}"
            assert all(n[:4] == pid_s and n[5] == str(cam) for n in block)
            assert len({n[:11] for n in block}) == 1  # one tracklet per row
            assert [int(n[12:15]) for n in block] == list(range(1, len(block) + 1))
    q = loadmat(root / "info" / "query_IDX.mat")["query_IDX"]
    test = loadmat(root / "info" / "tracks_test_info.mat")["track_test_info"]
    assert q.shape == (1, facts["query_tracklets"])
    rows = test[q[0].astype(int) - 1]
    assert (rows[:, 2] > 0).all() and max(Counter(map(tuple, rows[:, 2:])).values()) == 1
    with open(root / "mars_attributes.csv") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == MARS_HEADER
    assert len(lines) - 1 == facts["train_tracklets"] + facts["test_tracklets"] - facts["distractor_tracklets"] \
        - facts["junk_tracklets"]


def test_ilidsvid_layout(tmp_path):
    root = write_layout(tmp_path / "ilids", "ilidsvid", persons=6, **SMALL)
    seq = root / "i-LIDS-VID" / "sequences"
    dirs1, dirs2 = sorted(p.name for p in (seq / "cam1").iterdir()), sorted(p.name for p in (seq / "cam2").iterdir())
    assert dirs1 == dirs2 and len(dirs1) == 6 and dirs1[:2] == ["person001", "person002"]
    numbers = [int(d[6:]) for d in dirs1]
    assert numbers[-1] > len(numbers)  # gaps between person numbers
    for cam in ("cam1", "cam2"):
        for d in dirs1:
            files = sorted((seq / cam / d).glob("*.png"))
            frames = [int(re.fullmatch(rf"{cam}_{d}_(\d{{5}})\.png", f.name).group(1)) for f in files]
            assert frames == list(range(frames[0], frames[0] + len(frames))) and len(frames) >= 4
    ls_set = loadmat(root / "train-test people splits" / "train_test_splits_ilidsvid.mat")["ls_set"]
    assert ls_set.shape == (10, 6)
    for row in ls_set:
        assert sorted(row.astype(int).tolist()) == list(range(1, 7))
    with pytest.raises(ReidError, match="even"):
        write_layout(tmp_path / "odd", "ilidsvid", persons=5, **SMALL)


def test_prid2011_layout(tmp_path):
    root = write_layout(tmp_path / "prid", "prid2011", **SMALL)
    facts = json.loads((root / "layout.json").read_text())
    ms = root / "prid_2011" / "multi_shot"
    a, b = sorted(p.name for p in (ms / "cam_a").iterdir()), sorted(p.name for p in (ms / "cam_b").iterdir())
    assert len(a) == facts["cam_a_persons"] and len(b) == facts["cam_b_persons"] and a[0] == b[0] == "person_0001"
    frames = sorted(p.name for p in (ms / "cam_a" / "person_0001").iterdir())
    assert frames[0] == "0001.png" and frames == [f"{i:04d}.png" for i in range(1, len(frames) + 1)]
    splits = json.loads((root / "splits_prid2011.json").read_text())
    assert len(splits) == 10
    for s in splits:
        assert set(s) == {"train", "test"} and not set(s["train"]) & set(s["test"])
        assert len(s["train"]) == len(s["test"]) == facts["split_persons"] // 2
        assert set(s["train"]) | set(s["test"]) <= set(a) & set(b)
        assert not set(facts["left_out"]) & (set(s["train"]) | set(s["test"]))


@pytest.mark.parametrize("old_names", [False, True])
def test_duke_layout(tmp_path, old_names):
    root = write_layout(tmp_path / "duke", "duke", old_names=old_names, **SMALL)
    facts = json.loads((root / "layout.json").read_text())
    pattern = r"(\d{4})C(\d)F(\d{4})X(\d{5})\.jpg" if old_names else r"(\d{4})_C(\d)_F(\d{4})_X(\d{5})\.jpg"
    tracklets = {}
    for d in ("train", "query", "gallery"):
        dirs = sorted(p for p in (root / d).glob("*/*") if p.is_dir())
        assert len(dirs) == facts["tracklets"][d]
        for t in dirs:
            names = sorted(f.name for f in t.iterdir())
            parsed = [re.fullmatch(pattern, n) for n in names]
            assert all(parsed) and all(m.group(1) == t.parent.name for m in parsed)
            tracklets[(d, t.parent.name, t.name)] = [int(m.group(3)) for m in parsed]
    starts = Counter(f[0] for f in tracklets.values())
    assert set(starts) == {1, 2}  # some tracklets start at F0002
    for (d, pid, tno), f in tracklets.items():
        if d == "query":  # duplicated in gallery/
            assert tracklets[("gallery", pid, tno)] == f
    assert len({pid for d, pid, _ in tracklets if d == "query"}) == facts["query_ids"] == facts["tracklets"]["query"]
    with open(root / "duke_attributes.csv") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == DUKE_HEADER
    assert len(lines) - 1 == facts["tracklets"]["train"] + facts["tracklets"]["gallery"]


def test_layout_errors(tmp_path):
    with pytest.raises(ReidError, match="unknown layout"):
        write_layout(tmp_path / "x", "market")
    with pytest.raises(ReidError, match="do not apply"):
        write_layout(tmp_path / "x", "mars", old_names=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ReidError, match="not empty"):
        write_layout(tmp_path / "full", "mars")


def test_binary_attributes_mapping():
    row = {"gender": 1, "age": 2, "hair": 1, "hat": 0, "glasses": 1, "top length": 1, "top color": 8,
           "bottom color": 7, "bottom length": 1, "bottom type": 0, "shoes color": 1, "backpack": 0,
           "shoulder bag": 1, "hand bag": 0}
    b = binary_attributes(row)
    assert list(b) == BINARY_NAMES
    on = {k for k, v in b.items() if v}
    assert on == {"Female", "Age31-45", "hs-LongHair", "hs-Glasses", "ub-ShortSleeve", "up-Mixture", "lb-Shorts",
                  "low-Blue", "shoes-White", "attach-SingleShoulderBag"}
    assert binary_attributes({**row, "bottom type": 1, "bottom length": 0})["lb-Skirt"] == 1
    assert binary_attributes({**row, "bottom length": 0})["lb-LongTrousers"] == 1


def _read_labels(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_source_domain_set(tmp_path):
    cfg = make_config("tiny", source_images=10, source_height=96, source_width=40)
    labels = generate_source_domain(tmp_path / "sd", cfg, seed=0)
    groups = json.loads((tmp_path / "sd" / "groups.json").read_text())
    assert list(groups) == ["gender_age", "head", "upper", "lower", "shoes", "attach"] and groups == BINARY_GROUPS
    rows = _read_labels(labels)
    assert list(rows[0]) == ["image", *[n for g in groups.values() for n in g]]
    assert len(rows) == 10
    for r in rows:
        img = np.asarray(Image.open(tmp_path / "sd" / r["image"]))
        assert img.shape == (96, 40, 3) and img.std() > 10
        v = {k: int(x) for k, x in r.items() if k != "image"}
        assert set(v.values()) <= {0, 1}
        for prefix in ("Age", "up-", "low-", "shoes-", "lb-"):  # exactly one class of each multi-class attribute
            assert sum(x for k, x in v.items() if k.startswith(prefix)) == 1, prefix
    again = generate_source_domain(tmp_path / "sd2", cfg, seed=0)
    assert _read_labels(again) == rows
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sd2" / rows[3]["image"])),
                          np.asarray(Image.open(tmp_path / "sd" / rows[3]["image"])))


def test_a_layout_an_interrupted_run_left_is_written_again_and_other_folders_refused(tmp_path, capsys):
    from reid.data.synth.generate import INCOMPLETE

    left = tmp_path / "left"
    (left / "bbox_train" / "0001").mkdir(parents=True)
    (left / "bbox_train" / "0001" / "half.jpg").write_bytes(b"\xff\xd8")  # what a Ctrl-C left
    (left / INCOMPLETE).touch()
    root = write_layout(left, "prid2011", **SMALL)
    assert "did not finish; writing it again" in capsys.readouterr().out
    assert not (root / INCOMPLETE).exists() and not (root / "bbox_train").exists() and (root / "layout.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(ReidError, match="is not empty; layouts are written into a new or empty directory"):
        write_layout(other, "prid2011", **SMALL)
