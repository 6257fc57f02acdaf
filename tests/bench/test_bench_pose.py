"""`reid bench pose`: Keypoint R-CNN time per frame and keypoint shift at several --min-size values."""

import json
import re

import numpy as np
import pytest
import torch

from reid.bench import pose as bench_pose
from reid.cli import main
from reid.errors import ReidError


@pytest.mark.parametrize(("size", "min_size", "max_size"), [((256, 128), 800, 1333), ((256, 128), 256, 1333),
                                                             ((128, 64), 128, 1333), ((100, 300), 800, 1000)])
def test_network_input_is_the_size_torchvision_resizes_to(size, min_size, max_size):
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    transform = GeneralizedRCNNTransform(min_size, max_size, [0.0] * 3, [1.0] * 3).eval()
    images, _ = transform([torch.zeros(3, *size)])
    assert bench_pose.network_input(*size, min_size, max_size) == tuple(images.image_sizes[0])


def test_durations_read_in_the_unit_that_fits():
    assert [bench_pose.duration(s) for s in (3, 119.4, 600, 7199, 7200, 86400 * 3)] == [
        "3 s", "119 s", "10 min", "120 min", "2.0 h", "72.0 h"]


def test_keypoint_shift_matches_a_loop_over_joints():
    rng = np.random.default_rng(0)
    ref, other = rng.uniform(0, 1, (5, 18, 3)).astype(np.float32), rng.uniform(0, 1, (5, 18, 3)).astype(np.float32)
    other[..., :2] = ref[..., :2] + rng.normal(0, 3, (5, 18, 2))
    dists, kept, confident = [], 0, 0
    for n in range(5):
        for j in range(18):
            if ref[n, j, 2] >= 0.3:
                confident += 1
                if other[n, j, 2] >= 0.3:
                    kept += 1
                    dists.append(((ref[n, j, 0] - other[n, j, 0]) ** 2 + (ref[n, j, 1] - other[n, j, 1]) ** 2) ** 0.5)
    shift, share = bench_pose.keypoint_shift(ref, other)
    assert shift == pytest.approx(float(np.median(dists)), rel=1e-5) and share == pytest.approx(kept / confident)
    ref[..., 2] = 0
    assert bench_pose.keypoint_shift(ref, other) == (None, None)  # nothing confident to compare


@pytest.mark.timeout(300)
def test_bench_pose_times_each_size_on_a_manifests_frames(tmp_path, capsys):
    from reid.bench.toydata import write_toy_dataset

    manifest = write_toy_dataset(tmp_path / "toy", ids=2, num_frames=3, size=(64, 32))
    out_json = tmp_path / "pose.json"
    assert main(["bench", "pose", "--manifest", str(manifest), "--random-weights", "--device", "cpu", "--frames",
                 "4", "--min-sizes", "64,32", "--repeats", "1", "--threads", "1", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+64\s+128x64\s+\d+\s+[\d.]+\s+1\.00x\s+-\s+-$", out, re.M), out  # shorter side 32 -> 64
    assert re.search(r"^\s+32\s+64x32\s+\d+\s+[\d.]+\s+[\d.]+x\s+-\s+-$", out, re.M), out
    assert "random weights: timing only" in out
    data = json.loads(out_json.read_text())
    assert data["torch_threads"] == 1 and data["cpus"] >= 1 and data["batch_size"] == 16 and data["date"][:2] == "20"
    assert data["manifest"] == str(manifest) and data["gpu"] is None and data["proposals"] == 1000
    assert data["cpu_model"] and data["torch"] and data["ray"] and "commit" in data  # what the numbers ran on
    total = data["manifest_frames"]
    assert total == 2 * 2 * 3 and data["frames"] == 4 and data["frame_size"] == [64, 32]  # 2 ids x 2 cameras x 3
    assert [r["min_size"] for r in data["rows"]] == [64, 32] and all(r["s_per_frame"] > 0 for r in data["rows"])
    assert re.search(rf"`reid pose` over the manifest's {total} frames, one worker like this process \(device, "
                     r"threads\): 64: \d+ s, 32: \d+ s$", out, re.M), out


def test_keypoints_are_compared_to_the_first_size_with_real_weights(monkeypatch, capsys):
    """The comparison's plumbing, with an estimator whose keypoints move by 1 px per halving of the size."""

    class Fake:
        def __init__(self, weights, random_weights, batch_size, device, min_size, max_size, proposals):
            self.min_size, self.device = min_size, torch.device("cpu")

        def __call__(self, frames):
            kps = np.zeros((len(frames), 18, 3), np.float32)
            kps[..., 0] = np.log2(800 / self.min_size)  # x moves by 1 px per halving
            kps[:, :9, 2] = 1.0                          # 9 confident joints of 18 ...
            kps[:, :3, 2] = 1.0 if self.min_size >= 400 else 0.0  # ... of which 3 are lost below 400
            return kps

    monkeypatch.setattr("reid.pose.keypoint_rcnn.KeypointRCNNEstimator", Fake)
    assert main(["bench", "pose", "--frames", "2", "--min-sizes", "800,400,200", "--repeats", "1",
                 "--height", "32", "--width", "16"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+400\s+\S+\s+.*\s1\.0 px\s+100%$", out, re.M), out
    assert re.search(r"^\s+200\s+\S+\s+.*\s2\.0 px\s+67%$", out, re.M), out
    assert "keypoint shift: median distance to min size 800's keypoints" in out


def test_bad_arguments_and_missing_weights_are_one_line_errors(tmp_path, monkeypatch, capsys):
    for bad in ("x", "800,x", "8", "800,800", ","):
        with pytest.raises(ReidError, match="--min-sizes"):
            bench_pose.parse_sizes(bad)
    assert main(["bench", "pose", "--frames", "0"]) == 2
    assert "--frames, --repeats and --batch-size must be >= 1" in capsys.readouterr().err
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no cached COCO weights
    assert main(["bench", "pose", "--frames", "1", "--min-sizes", "32", "--height", "32", "--width", "16"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no Keypoint R-CNN weights" in err and "--random-weights" in err
