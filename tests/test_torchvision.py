"""torch and torchvision must come from the same build: a mismatched torch makes torchvision's ops fail to load."""

import torch
import torchvision
from torchvision.ops import nms


def test_torchvision_compiled_op_runs():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torchvision.__version__
