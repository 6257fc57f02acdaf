"""The real MARS / Duke attribute CSVs: row counts, class counts, schema groups; malformed files."""

from pathlib import Path

import pytest

from reid.data.datasets.attributes_csv import read_attribute_csv
from reid.errors import ReidError

ANN = Path("/work/shared/annotations")
needs_real = pytest.mark.skipif(not (ANN / "mars" / "mars_attributes.csv").is_file(), reason="annotations absent")

QUALITY = ("occlusion", "cut-out", "background-dominant", "target-change", "target-miss", "wrong-target")


@needs_real
def test_mars_extended():
    t = read_attribute_csv(ANN / "mars" / "mars_attributes.csv")
    assert t.format == "extended" and len(t) == 16360
    assert len({k[0] for k in t.values}) == 1259
    counts = t.class_counts
    assert (counts["motion"], counts["pose"], counts["top color"], counts["bottom color"], counts["age"]) == \
        (5, 6, 9, 10, 4)
    multi = {"motion", "pose", "top color", "bottom color", "age"}
    assert all(n == 2 for c, n in counts.items() if c not in multi)
    schema = t.schema
    assert {g.name for g in schema.by_kind("irrelevant")} == {"motion", "pose"}
    assert {g.name for g in schema.by_kind("relevant")} == {"gender_age", "head", "upper", "lower", "attach"}
    assert len(schema.column_names) == 14  # 12 ID-relevant + motion + pose; the 7 quality flags stay out
    assert not set(QUALITY) & set(schema.column_names)
    top = next(c for c in schema.columns if c.name == "top color")
    assert top.num_classes == 9 and top.width == 9  # multi-class kept as classes


@needs_real
def test_mars_v2018_matches_the_extended_file():
    old = read_attribute_csv(ANN / "mars" / "mars_attributes_v2018.csv")
    new = read_attribute_csv(ANN / "mars" / "mars_attributes.csv")
    assert old.format == "v2018" and len(old) == 16360
    assert set(old.values) == set(new.values)
    assert all(old.values[k][c] == new.values[k][c] for k in old.values for c in old.columns)
    assert old.schema.by_kind("irrelevant") == []
    assert old.class_counts["top color"] == 9 and old.class_counts["bottom color"] == 10
    assert old.class_counts["age"] == 4


@needs_real
def test_duke():
    t = read_attribute_csv(ANN / "duke" / "duke_attributes.csv")
    assert len(t) == 4832 and len({k[0] for k in t.values}) == 1812
    counts = t.class_counts
    assert (counts["motion"], counts["pose"], counts["bottom color"], counts["top color"]) == (5, 6, 8, 9)
    multi = {"motion", "pose", "bottom color", "top color"}
    assert all(n == 2 for c, n in counts.items() if c not in multi)  # incl. all-zero background-dominant
    assert set(t.schema.column_names) == {"backpack", "bag", "handbag", "boots", "gender", "hat", "shoes", "top",
                                          "bottom color", "top color", "motion", "pose"}
    assert {k[1] for k in t.values} == set(range(1, 9))


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("pid,cam,t,gender\n", "expected one of"),
    ("person_id,camera_id,tracklets_id,gender\n1,2,3\n", "line 2: 3 fields, expected 4"),
    ("person_id,camera_id,tracklets_id,gender\n1,2,3,x\n", "non-integer"),
    ("person_id,camera_id,tracklets_id,gender\n1,2,3,0\n1,2,3,1\n", "duplicate key"),
])
def test_malformed(tmp_path, text, match):
    p = tmp_path / "a.csv"
    p.write_text(text)
    with pytest.raises(ReidError, match=match):
        read_attribute_csv(p)


def test_missing_file(tmp_path):
    with pytest.raises(ReidError, match="expected a file at .*nope.csv"):
        read_attribute_csv(tmp_path / "nope.csv")


def test_binary_file_from_transfer_attributes_is_joined_with_its_groups(tmp_path):
    import json

    from reid.data.datasets.attributes_csv import join_attributes
    from reid.data.records import TrackletRecord

    csv = tmp_path / "duke_binary.csv"
    csv.write_text("person_id,camera_id,tracklets_id,male,backpack,walking\n1,2,3,1,-1,0\n4,5,6,0,1,1\n")
    (tmp_path / "duke_binary.groups.json").write_text(json.dumps({"gender_age": ["male"], "attach": ["backpack"],
                                                                  "motion": ["walking"]}))
    t = read_attribute_csv(csv)
    assert t.format == "binary" and [g.name for g in t.schema.groups] == ["gender_age", "attach", "motion"]
    assert [g.kind for g in t.schema.groups] == ["relevant", "relevant", "irrelevant"]
    recs = [TrackletRecord(tracklet_id=f"t{i}", pid=p, camid=c, dataset="duke", role="train", num_frames=2,
                           tracklet_no=n) for i, (p, c, n) in enumerate([(1, 2, 3), (4, 5, 6), (7, 8, 9)])]
    joined = join_attributes(recs, t)
    assert joined.records[0].attributes == {"male": 1, "walking": 0}  # -1 = missing label, left out
    assert joined.records[1].attributes == {"male": 0, "backpack": 1, "walking": 1}
    assert (joined.matched, joined.unmatched) == (2, 1)
