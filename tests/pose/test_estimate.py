import json

import numpy as np
import pytest

from reid.cli import main
from reid.data.records import read_manifest
from reid.pose import get_source
from reid.pose.estimate import PoseJobOptions, estimate_keypoints, output_stems
from reid.pose.openpose_json import write_openpose_json

TINY = dict(random_weights=True, batch_size=2, device="cpu", min_size=64, max_size=96, proposals=10)


def check_outputs(root, out_manifest, json_files=True):
    manifest = read_manifest(out_manifest)
    assert manifest.root.resolve() == root.resolve() and manifest.meta["keypoints_source"]
    source = get_source("synthetic", manifest)
    for rec, stem in zip(manifest.records, ("c1_t0", "c1_t1"), strict=True):
        assert rec.keypoints == f"pose/keypoints/{stem}.npy"
        kps = source.load(rec)  # checks float32 [num_frames, 18, 3]
        assert np.isfinite(kps).all() and ((kps[..., 2] >= 0) & (kps[..., 2] <= 1)).all()
        files = sorted((root / "pose" / "openpose" / stem).glob("*_keypoints.json"))
        assert len(files) == (rec.num_frames if json_files else 0)
        for i, f in enumerate(files):
            people = json.loads(f.read_text())["people"]
            assert isinstance(people, list)
            for person in people:
                assert len(person["pose_keypoints_2d"]) == 54
                assert np.allclose(np.reshape(person["pose_keypoints_2d"], (18, 3)), kps[i], atol=1e-3)
    return manifest


def test_job_in_process_with_random_weights(frame_dataset):
    root, path = frame_dataset
    result = estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=0)
    assert result.written == 2 and not result.failed
    check_outputs(root, result.manifest)


def test_cli_in_process_and_errors(frame_dataset, tmp_path_factory, monkeypatch, capsys):
    root, path = frame_dataset
    args = ["pose", "--manifest", str(path), "--random-weights", "--workers", "0", "--batch-size", "2",
            "--min-size", "64", "--max-size", "96", "--proposals", "10", "--device", "cpu"]
    assert main(args + ["--out", str(root / "pose"), "--no-json"]) == 0
    check_outputs(root, root / "pose" / "manifest.parquet", json_files=False)
    outside = tmp_path_factory.mktemp("elsewhere")
    assert main(args + ["--out", str(outside)]) == 2
    assert "inside the dataset root" in capsys.readouterr().err
    assert main(args + ["--out", str(root)]) == 2
    assert "overwrite the input manifest" in capsys.readouterr().err
    monkeypatch.setenv("TORCH_HOME", str(outside))
    no_weights = [a for a in args if a != "--random-weights"] + ["--out", str(root / "pose2")]
    assert main(no_weights) == 2
    err = capsys.readouterr().err
    assert "keypointrcnn_resnet50_fpn_coco-fc266e95.pth" in err and str(outside) in err


def test_in_process_the_cli_keeps_torchs_threads_unless_told(frame_dataset, monkeypatch):
    """--workers 0 runs in this process: all its cores (torch's default) unless --cpus-per-worker says otherwise;
    an actor's threads follow its CPUs (1 by default)."""
    import reid.pose.estimate as estimate

    root, path = frame_dataset
    seen = []
    monkeypatch.setattr(estimate, "estimate_keypoints", lambda manifest, out, options, **kw: seen.append(
        (options.threads, kw["cpus_per_worker"])) or estimate.PoseJobResult(manifest=out))
    args = ["pose", "--manifest", str(path), "--out", str(root / "pose"), "--random-weights"]
    for extra in (["--workers", "0"], ["--workers", "0", "--cpus-per-worker", "1"], ["--workers", "2"],
                  ["--workers", "2", "--cpus-per-worker", "2.4"]):
        assert main(args + extra) == 0
    assert seen == [(0, 1.0), (1, 1.0), (1, 1.0), (2, 2.4)]
    assert main(args + ["--cpus-per-worker", "0"]) == 2


def test_job_converts_openpose_json(frame_dataset):
    root, path = frame_dataset
    manifest = read_manifest(path)
    for rec in manifest.records:
        for i, frame in enumerate(rec.frames):
            write_openpose_json(root / "op" / frame.replace(".png", "_keypoints.json"),
                                np.full((18, 3), 0.5 + i / 10, np.float32))
    result = estimate_keypoints(path, root / "pose", PoseJobOptions(source="openpose-json", json_root="op"),
                                workers=0)
    out = check_outputs(root, result.manifest)
    assert get_source("synthetic", out).load(out.records[0])[:, 0, 2].tolist() == pytest.approx([0.5, 0.6, 0.7])


def test_output_stems_are_safe_and_unique():
    from reid.data.records import TrackletRecord

    recs = [TrackletRecord(tracklet_id=t, pid=1, camid=1, dataset="x", role="train", num_frames=1)
            for t in ("a/b", "a_b", "../x")]
    assert output_stems(recs) == ["a_b", "a_b-1", ".._x"]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(300)
def test_ray_data_job_with_random_weights(frame_dataset):
    import ray

    root, path = frame_dataset
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    try:
        result = estimate_keypoints(path, root / "pose", PoseJobOptions(**TINY), workers=1, cpus_per_worker=0.5)
    finally:
        ray.shutdown()
    assert result.written == 2 and not result.failed
    check_outputs(root, result.manifest)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(120)
def test_each_tracklet_is_its_own_block_so_progress_moves_per_tracklet():
    import ray

    from reid.pose.estimate import tracklet_rows

    ray.init(num_cpus=1, object_store_memory=100 * 1024**2, include_dashboard=False)
    try:
        ds = tracklet_rows(list(range(55)))
        assert ds.num_blocks() == 55 and [r["row"] for r in ds.iter_rows()] == list(range(55))
        ds = tracklet_rows([3, 7, 40])  # a resumed job: the rows not done yet
        assert ds.num_blocks() == 3 and [r["row"] for r in ds.iter_rows()] == [3, 7, 40]
    finally:
        ray.shutdown()
