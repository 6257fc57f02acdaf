"""Pretrained weights on a cluster: the real-dataset recipes require them and fail at once, with one line saying how
to provide them; `model.pretrained=false` opts out; `model.weights_path` may be a file or a pyarrow.fs URI; the
synthetic recipes keep falling back to random weights."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest
import torch
import torchvision

from reid.config import build_config
from reid.errors import ReidError
from reid.models.backbones import TORCHVISION_CACHE, cached_weights_path, load_imagenet_weights, resnet_trunk

ROOT = Path(__file__).resolve().parents[2]
RESNET_METHODS = ("asanet", "adfta", "posetap")
REAL = sorted({Path(p).stem for pat in ("*-mars*", "*-duke*", "*-ilidsvid*", "*-prid2011*")
               for p in glob.glob(str(ROOT / "reid/configs" / f"{pat}.yaml"))})


def _method(recipe: str) -> str:
    return re.search(r"^method: (\w+)", (ROOT / "reid/configs" / f"{recipe}.yaml").read_text(), re.M).group(1)


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def _imagenet_like_file(path: Path, depth: int = 18) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict with recognisable values, saved where asked."""
    torch.manual_seed(0)
    state = getattr(torchvision.models, f"resnet{depth}")(weights=None).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("recipe", REAL)
def test_real_dataset_recipes_run_on_gpus_with_retries_and_required_weights(recipe):
    cfg = build_config(_method(recipe), [recipe], [])
    assert cfg.ray.use_gpu is True and cfg.ray.max_failures > 0
    if _method(recipe) in RESNET_METHODS:
        assert cfg.model.get("pretrained", True) is True and cfg.model["weights_path"] == TORCHVISION_CACHE


@pytest.mark.parametrize("recipe", [r for r in REAL if _method(r) in RESNET_METHODS])
def test_a_real_recipe_without_the_weights_fails_at_once_with_the_remedy(recipe, empty_torch_home):
    model = build_config(_method(recipe), [recipe], []).model
    depth = model.get("depth", 50)
    with pytest.raises(ReidError) as err:
        resnet_trunk(depth, model.get("pretrained", True), model["weights_path"])
    message = str(err.value)
    assert "\n" not in message and str(cached_weights_path(depth)) in message
    assert "model.pretrained=false" in message and "model.weights_path=" in message and "TORCH_HOME" in message
    opted_out = build_config(_method(recipe), [recipe], ["model.pretrained=false"]).model
    trunk, _ = resnet_trunk(depth, opted_out["pretrained"], opted_out["weights_path"])  # random init, no error
    assert isinstance(trunk, torch.nn.Sequential)


def test_the_torchvision_cache_file_is_loaded_when_present(empty_torch_home):
    state = _imagenet_like_file(cached_weights_path(18))
    net = torchvision.models.resnet18(weights=None)
    msg = load_imagenet_weights(net, 18, TORCHVISION_CACHE)
    assert msg.startswith("loaded") and torch.equal(net.conv1.weight, state["conv1.weight"])


def test_weights_from_a_pyarrow_uri(tmp_path):
    file = tmp_path / "w" / "resnet18.pth"
    state = _imagenet_like_file(file)
    net = torchvision.models.resnet18(weights=None)
    load_imagenet_weights(net, 18, file.as_uri())  # file:///...: read through pyarrow.fs, as s3:// and gs:// are
    assert torch.equal(net.layer4[1].bn2.weight, state["layer4.1.bn2.weight"])
    with pytest.raises(ReidError, match="cannot read pretrained weights") as err:
        load_imagenet_weights(net, 18, (tmp_path / "missing.pth").as_uri())
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("uri, match", [("https://example.com/r.pth", "scheme 'https://' not supported"),
                                        ("torchvision://IMAGENET1K_V2", "only torchvision weights"),
                                        ("/nowhere/r.pth", "does not exist")])
def test_unsupported_or_missing_weights_are_clear_errors(uri, match, empty_torch_home):
    with pytest.raises(ReidError, match=match):
        load_imagenet_weights(torchvision.models.resnet18(weights=None), 18, uri)


def test_synthetic_recipes_keep_random_weights_without_the_file(empty_torch_home):
    cfg = build_config("baseline", ["baseline-synthetic"], [])
    assert cfg.model.get("weights_path") is None
    msg = load_imagenet_weights(torchvision.models.resnet18(weights=None), 18, None)
    assert "starting from random weights" in msg


def test_the_drivers_preflight_names_the_missing_file_before_any_worker(empty_torch_home):
    from reid.models.backbones import check_weights

    model = build_config("asanet", ["asanet-mars"], []).model
    with pytest.raises(ReidError, match="required by this recipe are missing"):
        check_weights(model)
    check_weights(build_config("asanet", ["asanet-mars"], ["model.pretrained=false"]).model)
    check_weights(build_config("astpn", ["astpn-mars"], []).model)  # no ResNet trunk: nothing to check
    check_weights(build_config("baseline", ["baseline-synthetic"], []).model)  # optional weights
    _imagenet_like_file(cached_weights_path(model.get("depth", 50)), depth=model.get("depth", 50))
    check_weights(model)
