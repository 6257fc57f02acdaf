"""ResNet trunks with ImageNet weights loaded from files or URIs (nothing is downloaded from a hub at run time).

Where the weights come from (`model.weights_path`), in order:
1. an explicit file or URI: a torchvision ResNet state dict (`resnet50-0676ba61.pth`). A local path, `file://`,
   `s3://`, `gs://` or `hdfs://` (read through `pyarrow.fs`, credentials from the environment as for any pyarrow
   client); a missing file, or an unreadable URI, is an error;
2. `torchvision://IMAGENET1K_V1`: the torchvision cache file of the ResNet's depth,
   `$TORCH_HOME/hub/checkpoints/<file name of the torchvision URL>` (by default
   `~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth`), REQUIRED: the real-dataset recipes name it, so a run
   without the file fails at once with one line saying how to provide it, instead of training from random weights
   for a cluster-day. `model.pretrained=false` opts out;
3. unset: that same cache file if it is there, otherwise random initialisation, and the log says so (the
   synthetic recipes, tests and demos, which must run on a machine without the file).
Files are read with `torch.load(weights_only=True)` (no pickle code execution).
"""

from __future__ import annotations

import io
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
TORCHVISION_CACHE = "torchvision://IMAGENET1K_V1"
_PYARROW_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs")


def cached_weights_path(depth: int) -> Path:
    """Where torchvision's cache keeps the ImageNet weights of ResNet-<depth>."""
    url = _FACTORIES[depth][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def how_to_provide(depth: int) -> str:
    """The one-line remedy for missing ImageNet weights."""
    name = cached_weights_path(depth).name
    return (f"put {name} (torchvision's ResNet-{depth} IMAGENET1K_V1 file) under $TORCH_HOME/hub/checkpoints/ "
            f"(the image sets TORCH_HOME=/shared/torch), or set model.weights_path=/path/or/s3://bucket/{name}, "
            f"or model.pretrained=false to train from random weights")


def resolve_weights(depth: int, path: str | None) -> str | None:
    """The file or URI to load for `model.weights_path` (module docstring), or None for random weights.

    Raises ReidError when the weights are required and missing, or the scheme is not supported.
    """
    if depth not in _FACTORIES:
        raise ReidError(f"ResNet depth {depth} not supported; choose one of {sorted(_FACTORIES)}")
    if path == TORCHVISION_CACHE:
        file = cached_weights_path(depth)
        if not file.is_file():
            raise ReidError(f"ImageNet weights for ResNet-{depth} required by this recipe are missing at {file}: "
                            f"{how_to_provide(depth)}")
        return str(file)
    if path is None:
        file = cached_weights_path(depth)
        return str(file) if file.is_file() else None
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if scheme == "torchvision":
        raise ReidError(f"model.weights_path '{path}': the only torchvision weights are {TORCHVISION_CACHE}")
    if scheme and scheme not in _PYARROW_SCHEMES:
        raise ReidError(f"model.weights_path '{path}': URI scheme '{scheme}://' not supported; use a local path "
                        f"or one of {', '.join(s + '://' for s in _PYARROW_SCHEMES)}")
    if not scheme and not Path(path).is_file():
        raise ReidError(f"pretrained weights file '{path}' does not exist (model.weights_path); "
                        f"{how_to_provide(depth)}")
    return path


def check_weights(model_params: dict) -> None:
    """Fail before any worker starts when a config's required weights are missing (the driver's pre-flight).

    `model_params` is a config's `model` section; sections without a ResNet trunk (no `pretrained` key) and
    `pretrained: false` pass. URIs are not opened here (the workers read them); local files and the torchvision
    cache are checked on this machine, which on a cluster shares /shared with the workers.
    """
    if not model_params.get("pretrained", False):
        return
    path = model_params.get("weights_path")
    if path is None or ("://" in path and not path.startswith("torchvision://")):
        return
    resolve_weights(int(model_params.get("depth", 50)), path)


def _read_state(source: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file or a pyarrow.fs URI, with `weights_only=True`."""
    if "://" not in source:
        return torch.load(source, map_location="cpu", weights_only=True)
    import pyarrow.fs

    try:
        fs, inner = pyarrow.fs.FileSystem.from_uri(source)
        with fs.open_input_stream(inner) as stream:
            data = stream.read()
    except (OSError, ValueError) as exc:  # pyarrow: FileNotFoundError, ArrowInvalid (a ValueError), auth errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReidError(f"cannot read pretrained weights '{source}' (model.weights_path): {first}") from None
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_imagenet_weights(model: nn.Module, depth: int, path: str | None) -> str:
    """Load weights into a torchvision ResNet; returns a one-line description of what happened."""
    source = resolve_weights(depth, path)
    if source is None:
        msg = (f"no ImageNet weights for ResNet-{depth} at {cached_weights_path(depth)}; starting from random "
               f"weights ({how_to_provide(depth)})")
        log.warning(msg)
        return msg
    state = _read_state(source)
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise ReidError(f"weights file {source} does not match ResNet-{depth} (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    msg = f"loaded ImageNet weights for ResNet-{depth} from {source}"
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
