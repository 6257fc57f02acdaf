import json

import numpy as np
import pytest

from reid.data.records import read_manifest
from reid.pose import KeypointError, get_source
from reid.pose.openpose_json import parse_openpose_json, read_openpose_json, write_openpose_json


def test_npy_source_reads_and_checks(frame_dataset):
    root, path = frame_dataset
    manifest = read_manifest(path)
    rec = manifest.records[0]
    kps = np.random.default_rng(0).random((3, 18, 3)).astype(np.float64)
    np.save(root / "k0.npy", kps)
    from dataclasses import replace

    src = get_source("synthetic", manifest)
    out = src.load(replace(rec, keypoints="k0.npy"))
    assert out.dtype == np.float32 and np.allclose(out, kps)
    np.save(root / "bad.npy", kps[:2])
    with pytest.raises(KeypointError, match=r"\[3, 18, 3\]"):
        src.load(replace(rec, keypoints="bad.npy"))
    with pytest.raises(KeypointError, match="reid pose"):
        src.load(rec)


def test_openpose_json_roundtrip_and_person_choice(tmp_path):
    kps = np.arange(54, dtype=np.float32).reshape(18, 3) / 100
    write_openpose_json(tmp_path / "a_keypoints.json", kps)
    data = json.loads((tmp_path / "a_keypoints.json").read_text())
    assert len(data["people"]) == 1 and len(data["people"][0]["pose_keypoints_2d"]) == 54
    assert np.allclose(read_openpose_json(tmp_path / "a_keypoints.json"), kps, atol=1e-3)
    write_openpose_json(tmp_path / "empty.json", np.zeros((18, 3)))
    assert json.loads((tmp_path / "empty.json").read_text())["people"] == []
    assert not read_openpose_json(tmp_path / "empty.json").any()
    weak, strong = [1.0, 2.0, 0.1] * 18, [3.0, 4.0, 0.9] * 18
    assert parse_openpose_json({"people": [{"pose_keypoints_2d": weak}, {"pose_keypoints_2d": strong}]}, "x")[0, 0] == 3


def test_openpose_body25_maps_to_coco18():
    flat = np.zeros((25, 3))
    flat[:, 0] = np.arange(25)
    flat[:, 2] = 1
    out = parse_openpose_json({"people": [{"pose_keypoints_2d": flat.ravel().tolist()}]}, "x")
    assert out[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    with pytest.raises(KeypointError, match="54"):
        parse_openpose_json({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}, "x")
    with pytest.raises(KeypointError, match="people"):
        parse_openpose_json({"foo": 1}, "x")


def test_openpose_json_source_mirrored_tree(frame_dataset):
    root, path = frame_dataset
    manifest = read_manifest(path)
    rec = manifest.records[1]
    for i, frame in enumerate(rec.frames):
        kps = np.full((18, 3), i + 1.0, np.float32)
        write_openpose_json(root / "op" / frame.replace(".png", "_keypoints.json"), kps)
    out = get_source("openpose-json", manifest, json_root="op").load(rec)
    assert out.shape == (2, 18, 3) and out[:, 0, 0].tolist() == [1.0, 2.0]
    with pytest.raises(KeypointError, match="no OpenPose file"):
        get_source("openpose-json", manifest, json_root="op").load(manifest.records[0])
