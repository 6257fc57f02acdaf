import numpy as np
import pytest
import torch

from reid.data.pose_maps import JOINT_NAMES
from reid.pose.keypoint_rcnn import (
    COCO17_JOINTS,
    KeypointRCNNEstimator,
    KeypointWeightsMissing,
    coco17_to_coco18,
    resolve_weights,
    select_person,
)


def test_coco17_to_coco18_hand_example():
    # joint j of COCO-17 at (10 j, 10 j + 1) with confidence 0.5 + 0.01 j
    kps17 = np.array([[10 * j, 10 * j + 1, 0.5 + 0.01 * j] for j in range(17)], np.float32)
    out = coco17_to_coco18(kps17)
    assert out.shape == (18, 3) and out.dtype == np.float32
    # COCO-18: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip, r-knee, r-ankle,
    # l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear; COCO-17: nose, l-eye, r-eye, l-ear, r-ear, l-shoulder,
    # r-shoulder, l-elbow, r-elbow, l-wrist, r-wrist, l-hip, r-hip, l-knee, r-knee, l-ankle, r-ankle
    expected_source = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    for i, j in enumerate(expected_source):
        if j is not None:
            assert out[i].tolist() == pytest.approx([10 * j, 10 * j + 1, 0.5 + 0.01 * j]), JOINT_NAMES[i]
    # the neck: midpoint of the shoulders (5 and 6), confidence of the less confident one
    assert out[1].tolist() == pytest.approx([55.0, 56.0, 0.55])
    # same mapping by joint names
    for i, name in enumerate(JOINT_NAMES):
        if name != "neck":
            assert out[i, 0] == 10 * COCO17_JOINTS.index(name)


def test_neck_is_missing_when_a_shoulder_is():
    kps17 = np.ones((2, 17, 3), np.float32)
    kps17[1, COCO17_JOINTS.index("left_shoulder"), 2] = 0.0
    out = coco17_to_coco18(kps17)
    assert out[0, 1].tolist() == [1.0, 1.0, 1.0] and out[1, 1].tolist() == [0.0, 0.0, 0.0]


def test_select_person_takes_the_best_person():
    kps = torch.arange(3 * 17 * 3, dtype=torch.float32).view(3, 17, 3)
    det = {"labels": torch.tensor([1, 2, 1]), "scores": torch.tensor([0.3, 0.99, 0.8]), "keypoints": kps,
           "keypoints_scores": torch.zeros(3, 17)}
    out = select_person(det)
    assert out[0, :2].tolist() == kps[2, 0, :2].tolist() and out[0, 2] == pytest.approx(0.5)  # sigmoid(0)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0),
             "keypoints": torch.zeros(0, 17, 3), "keypoints_scores": torch.zeros(0, 17)}
    assert not select_person(empty).any()


def test_missing_weights_name_the_file_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(KeypointWeightsMissing) as err:
        resolve_weights(None)
    msg = str(err.value)
    assert "keypointrcnn_resnet50_fpn_coco-fc266e95.pth" in msg and str(tmp_path) in msg and "--weights" in msg
    with pytest.raises(KeypointWeightsMissing, match="does not exist"):
        resolve_weights(str(tmp_path / "nope.pth"))


def test_estimator_with_random_weights_gives_coco18_arrays():
    est = KeypointRCNNEstimator(random_weights=True, batch_size=2, device="cpu", min_size=64, max_size=96,
                               proposals=10)
    frames = np.random.default_rng(0).integers(0, 255, (3, 64, 32, 3), dtype=np.uint8)
    out = est(frames)
    assert out.shape == (3, 18, 3) and out.dtype == np.float32 and np.isfinite(out).all()
    assert ((out[..., 2] >= 0) & (out[..., 2] <= 1)).all()


def test_cuda_asked_for_where_there_is_none_is_one_line(monkeypatch):
    from reid.errors import ReidError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ReidError, match=r"--device cuda: no CUDA device is visible here .*--gpus-per-worker 1"):
        KeypointRCNNEstimator(random_weights=True, device="cuda", min_size=32, max_size=64)
    assert KeypointRCNNEstimator(random_weights=True, device="auto", min_size=32, max_size=64).device.type == "cpu"


def test_the_random_weights_warning_comes_once_per_process(monkeypatch, caplog):
    import reid.pose.keypoint_rcnn as kr

    monkeypatch.setattr(kr, "_WARNED", [])
    for size in (32, 48):
        kr.build_model(random_weights=True, min_size=size, max_size=64)
    assert [r.message for r in caplog.records].count(
        "Keypoint R-CNN with RANDOM weights: the keypoints are meaningless (format tests only)") == 1
