"""ResNet trunks with ImageNet weights loaded from local files only (nothing is downloaded at run time).

Where the weights come from, in order:
1. an explicit file (`model.weights_path`): a torchvision ResNet state dict (`resnet50-0676ba61.pth`); if the
   user names a file that does not exist, that is an error;
2. the torchvision cache: `$TORCH_HOME/hub/checkpoints/<file name of the torchvision URL>` (by default
   `~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth`), where `torchvision.models.resnet50(weights=...)` puts
   it on a machine with internet; copy the file there on an offline cluster;
3. otherwise random initialisation, and the log says so.
Files are read with `torch.load(weights_only=True)` (no pickle code execution).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torchvision
from torch import nn

from reid.errors import ReidError

log = logging.getLogger(__name__)

_FACTORIES = {
    18: (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
    34: (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1),
    50: (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1),
}


def cached_weights_path(depth: int) -> Path:
    """Where torchvision's cache keeps the ImageNet weights of ResNet-<depth>."""
    url = _FACTORIES[depth][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_imagenet_weights(model: nn.Module, depth: int, path: str | None) -> str:
    """Load weights into a torchvision ResNet; returns a one-line description of what happened."""
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ReidError(f"pretrained weights file '{path}' does not exist (model.weights_path)")
    else:
        file = cached_weights_path(depth)
        if not file.is_file():
            msg = (f"no ImageNet weights for ResNet-{depth} at {file}; starting from random weights "
                   f"(put the torchvision file there, or set model.weights_path)")
            log.warning(msg)
            return msg
    state = torch.load(file, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise ReidError(f"weights file {file} does not match ResNet-{depth} (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    msg = f"loaded ImageNet weights for ResNet-{depth} from {file}"
    log.info(msg)
    return msg


def resnet_trunk(depth: int = 50, pretrained: bool = True, weights_path: str | None = None,
                 last_stride: int = 1) -> tuple[nn.Sequential, int]:
    """ResNet without avgpool / fc: [N, 3, H, W] -> [N, C, H/16, W/16] (last_stride 1) or H/32.

    Returns the trunk and its output channels C (512 for ResNet-18/34, 2048 for ResNet-50).
    `last_stride=1` keeps a finer final map (BoT / AGW practice for re-ID).
    """
    if depth not in _FACTORIES:
        raise ReidError(f"ResNet depth {depth} not supported; choose one of {sorted(_FACTORIES)}")
    net = _FACTORIES[depth][0](weights=None)
    if pretrained:
        load_imagenet_weights(net, depth, weights_path)
    if last_stride == 1:
        block = net.layer4[0]
        # torchvision puts the stride in conv2 of a Bottleneck (ResNet-50) and conv1 of a BasicBlock.
        (block.conv2 if depth == 50 else block.conv1).stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    channels = 2048 if depth == 50 else 512
    return trunk, channels
