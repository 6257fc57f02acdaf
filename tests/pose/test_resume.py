"""`reid pose` resumes: a rerun with the same settings estimates only the tracklets whose keypoints are not whole."""

import json

import numpy as np
import pytest

from reid.cli import main
from reid.data.records import read_manifest
from reid.errors import ReidError
from reid.pose import estimate
from reid.pose.estimate import PoseJobOptions, estimate_keypoints
from reid.pose.resume import SETTINGS_FILE, job_settings, save_atomic

TINY = dict(random_weights=True, batch_size=2, device="cpu", min_size=64, max_size=96, proposals=10)


@pytest.fixture
def estimated(monkeypatch):
    """Counts the tracklets the writer estimates (in this process: workers=0)."""
    seen: list[str] = []
    real = estimate.TrackletKeypointWriter.keypoints

    def counting(self, record):
        seen.append(record.tracklet_id)
        return real(self, record)

    monkeypatch.setattr(estimate.TrackletKeypointWriter, "keypoints", counting)
    return seen


def test_a_rerun_estimates_only_what_is_missing_or_damaged(frame_dataset, estimated, capsys):
    root, path = frame_dataset
    out = root / "pose"
    first = estimate_keypoints(path, out, PoseJobOptions(**TINY), workers=0)
    assert first.written == 2 and estimated == ["c1/t0", "c1/t1"]
    kept = np.load(out / "keypoints" / "c1_t0.npy")
    estimated.clear()
    capsys.readouterr()
    again = estimate_keypoints(path, out, PoseJobOptions(**TINY), workers=0)  # everything done: nothing to run
    assert again.written == 2 and estimated == [] and "2 of 2 tracklets already done" in capsys.readouterr().out
    (out / "keypoints" / "c1_t1.npy").write_bytes(b"")  # a file a crash left empty (EOFError): estimated again
    (out / "manifest.parquet").unlink()
    third = estimate_keypoints(path, out, PoseJobOptions(**TINY), workers=0)
    assert estimated == ["c1/t1"] and third.written == 2
    assert np.array_equal(np.load(out / "keypoints" / "c1_t0.npy"), kept)  # the done one untouched
    assert [r.keypoints for r in read_manifest(out / "manifest.parquet").records] == [
        "pose/keypoints/c1_t0.npy", "pose/keypoints/c1_t1.npy"]


def test_an_interrupted_job_keeps_what_it_finished(frame_dataset, estimated, monkeypatch):
    root, path = frame_dataset
    real = estimate.TrackletKeypointWriter.write

    def stop_at_second(self, row):
        if row == 1:
            raise KeyboardInterrupt  # Ctrl-C while the second tracklet runs
        return real(self, row)

    monkeypatch.setattr(estimate.TrackletKeypointWriter, "write", stop_at_second)
    with pytest.raises(KeyboardInterrupt):
        estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=0)
    assert (root / "pose" / "keypoints" / "c1_t0.npy").is_file() and not (root / "pose" / "manifest.parquet").exists()
    monkeypatch.setattr(estimate.TrackletKeypointWriter, "write", real)
    estimated.clear()
    assert estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=0).written == 2
    assert estimated == ["c1/t1"]


def test_other_settings_are_refused_in_one_line(frame_dataset, capsys):
    root, path = frame_dataset
    estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=0)
    assert json.loads((root / "pose" / SETTINGS_FILE).read_text())["min_size"] == 64
    with pytest.raises(ReidError, match=r"other settings \(min_size: 64 there, 80 now\); choose another --out"):
        estimate_keypoints(path, root / "pose", PoseJobOptions(**{**TINY, "min_size": 80}), workers=0)
    args = ["pose", "--manifest", str(path), "--out", str(root / "pose"), "--random-weights", "--workers", "0",
            "--min-size", "64", "--max-size", "96", "--proposals", "20", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "proposals: 10 there, 20 now" in err
    # what does not change the keypoints (batch size, device, threads, --no-json) may differ
    estimate_keypoints(path, root / "pose", PoseJobOptions(**{**TINY, "batch_size": 1, "write_json": False}),
                       workers=0)


def test_a_weights_file_is_the_same_setting_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = job_settings(PoseJobOptions(weights="w/kp.pth", min_size=256))
    assert relative["weights"] == str(tmp_path / "w" / "kp.pth") and relative["min_size"] == 256
    assert job_settings(PoseJobOptions(weights=str(tmp_path / "w" / "kp.pth"), min_size=256)) == relative
    assert job_settings(PoseJobOptions())["weights"] is None  # the torchvision cache
    assert "batch_size" not in relative and "device" not in relative and "threads" not in relative


def test_keypoints_without_recorded_settings_are_not_taken_for_this_jobs(frame_dataset):
    root, path = frame_dataset
    estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=0)
    (root / "pose" / SETTINGS_FILE).unlink()  # as a job before the settings were recorded left it
    with pytest.raises(ReidError, match=r"holds keypoints of a job that recorded no settings \(pose-job.json\)"):
        estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=0)


def test_json_files_missing_from_a_no_json_job_are_written_from_the_keypoints(frame_dataset, estimated):
    root, path = frame_dataset
    estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY, write_json=False), workers=0)
    assert not (root / "pose" / "openpose").exists()
    estimated.clear()
    estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=0)
    assert estimated == []
    for stem, n in (("c1_t0", 3), ("c1_t1", 2)):
        files = sorted((root / "pose" / "openpose" / stem).glob("*_keypoints.json"))
        kps = np.load(root / "pose" / "keypoints" / f"{stem}.npy")
        assert len(files) == n
        for f, frame in zip(files, kps, strict=True):
            people = json.loads(f.read_text())["people"]
            if people:
                assert np.allclose(np.reshape(people[0]["pose_keypoints_2d"], (18, 3)), frame, atol=1e-3)


def test_save_atomic_leaves_no_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "k.npy"
    save_atomic(target, np.ones((2, 18, 3), np.float32))
    assert np.load(target).shape == (2, 18, 3) and not list(tmp_path.glob("*.part"))

    def broken(f, arr):
        f.write(b"\x93NUMPY partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "save", broken)
    with pytest.raises(OSError):
        save_atomic(tmp_path / "other.npy", np.ones((2, 18, 3), np.float32))
    assert not (tmp_path / "other.npy").exists()  # only the .part, which a rerun never reads
    assert np.load(target).shape == (2, 18, 3)
