"""`train.channels_last` changes nothing on CPU (the GPU side is tests/gpu/test_cuda.py)."""

import torch
from torch import nn

from reid.training.step import memory_format


def test_channels_last_leaves_a_cpu_model_as_it_is():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3))
    out = memory_format(model, True, torch.device("cpu"))
    assert out is model and all(p.is_contiguous() for p in model.parameters())
    assert not model[0].weight.is_contiguous(memory_format=torch.channels_last)
