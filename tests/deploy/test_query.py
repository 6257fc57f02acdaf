"""`reid search --query M.parquet [--row ...]`: a wrong or missing row names tracklets that would do
(reid/deploy/query.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid.data.records import Manifest, TrackletRecord, write_manifest
from reid.deploy.query import resolve_query
from reid.errors import ReidError


def _manifest(tmp_path: Path, roles: list[str]) -> Path:
    recs = [TrackletRecord(tracklet_id=f"{i:04d}C1T0001", pid=i, camid=1, dataset="synthetic", role=role,
                           num_frames=8) for i, role in enumerate(roles)]
    return write_manifest(Manifest(records=recs, root=tmp_path, dataset="synthetic"))


def test_a_row_is_found_by_tracklet_id_or_number(tmp_path: Path) -> None:
    path = _manifest(tmp_path, ["train", "query", "gallery"])
    assert resolve_query(path, "0002C1T0001")[1] == 2
    assert resolve_query(path, "1")[1] == 1


def test_an_unknown_row_lists_query_tracklets_first(tmp_path: Path) -> None:
    path = _manifest(tmp_path, ["train", "query", "gallery", "query", "query", "query"])
    with pytest.raises(ReidError) as err:
        resolve_query(path, "q_0001")
    said = str(err.value)
    assert "no tracklet 'q_0001'" in said and "row number < 6" in said
    assert "query tracklets: 0001C1T0001, 0003C1T0001, 0004C1T0001, ..." in said


def test_a_manifest_without_row_names_some_tracklets(tmp_path: Path) -> None:
    path = _manifest(tmp_path, ["train", "gallery"])
    with pytest.raises(ReidError, match=r"--row TRACKLET_ID \(tracklets: 0000C1T0001, 0001C1T0001\)$"):
        resolve_query(path, None)


@pytest.mark.parametrize("name", ["one.jpg", "frame.PNG"])
def test_a_single_image_is_refused_as_a_tracklet_naming_the_directory_form(tmp_path: Path, name: str) -> None:
    from PIL import Image

    image = tmp_path / name
    Image.new("RGB", (32, 64)).save(image, format="PNG" if name.lower().endswith(".png") else "JPEG")
    with pytest.raises(ReidError, match=r"is one image, and a query is a tracklet: give the directory of its frames"):
        resolve_query(image)
    manifest, index = resolve_query(tmp_path)  # the directory holding it: a one-frame tracklet
    assert index == 0 and manifest.records[0].num_frames == 1
