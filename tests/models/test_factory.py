"""The one model factory (reid.models.factory): typed parameters, training vs testing builds, and the checkpoint
rule (every tensor must fit, except the ID classifier the MethodSpec names: cross-dataset testing)."""

from __future__ import annotations

import pytest
import torch

from reid.config import build_config
from reid.errors import ReidError
from reid.models.factory import build_method, load_weights
from reid.registry import get_method
from reid.spec import DataInfo


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(*overrides: str):
    return build_config("baseline", [], ["model.depth=18", "model.pretrained=false", "data.height=32",
                                         "data.width=16", *overrides])


def _info(num_classes: int) -> DataInfo:
    return DataInfo(num_classes=num_classes, height=32, width=16)


def _save(model: torch.nn.Module, directory) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, directory / "state.pt")


def test_training_build_has_an_objective_and_testing_build_is_in_eval_mode():
    trained = build_method(_cfg(), _info(5), train=True)
    assert trained.objective is not None and trained.model.training
    tested = build_method(_cfg(), _info(5))
    assert tested.objective is None and not tested.model.training and tested.checkpoint is None
    # the same seed, the same initial weights: an untrained test model is the training run's epoch-0 model
    for (k, a), b in zip(trained.model.state_dict().items(), tested.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_testing_never_downloads_trunk_weights(monkeypatch):
    seen = []
    spec = get_method("baseline")
    monkeypatch.setattr(type(spec), "build_model", lambda self, p, info: seen.append(p) or torch.nn.Linear(1, 1))
    build_method(_cfg("model.pretrained=true"), _info(5))
    assert seen[0].pretrained is False and type(seen[0]).__name__ == "BaselineParams"  # typed, validated once


def test_checkpoint_of_another_dataset_loads_all_but_the_classifier(tmp_path, capsys):
    source = build_method(_cfg(), _info(5)).model
    _save(source, tmp_path / "ckpt")
    built = build_method(_cfg("seed=1"), _info(7), tmp_path / "ckpt")
    assert built.checkpoint == tmp_path / "ckpt"
    assert "ID classifier" in capsys.readouterr().out
    own, src = built.model.state_dict(), source.state_dict()
    for key, value in src.items():
        if key.startswith("neck.classifier."):
            assert own[key].shape != value.shape
        else:
            assert torch.equal(own[key], value), key


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    _save(build_method(_cfg(), _info(5)).model, tmp_path / "ckpt")
    with pytest.raises(ReidError, match="tensor\\(s\\) missing"):
        build_method(_cfg("model.depth=34"), _info(5), tmp_path / "ckpt")  # more blocks
    _save(build_method(_cfg("model.depth=34"), _info(5)).model, tmp_path / "ckpt")
    with pytest.raises(ReidError, match="unknown"):
        build_method(_cfg(), _info(5), tmp_path / "ckpt")
    state = build_method(_cfg(), _info(5)).model.state_dict()
    key = next(k for k, v in state.items() if k.startswith("backbone") and v.ndim == 4)
    state[key] = torch.zeros(1, *state[key].shape[1:])
    with pytest.raises(ReidError, match=f"{key} has shape"):  # only the classifier may differ in shape
        build_method(_cfg(), _info(5), state)
    with pytest.raises(ReidError, match="does not exist"):
        build_method(_cfg(), _info(5), tmp_path / "nowhere")


def test_only_the_named_classifier_may_differ():
    """The rule reads `MethodSpec.classifier`, not the substring "classifier": a tensor whose name merely contains
    it is held to its shape."""
    spec = get_method("baseline")
    assert spec.classifier == "neck.classifier"
    assert spec.is_classifier("neck.classifier.weight") and not spec.is_classifier("neck.classifier_extra.weight")
    model = torch.nn.ModuleDict({"classifier": torch.nn.Linear(2, 3)})
    state = {"classifier.weight": torch.zeros(4, 2), "classifier.bias": torch.zeros(4)}
    with pytest.raises(ReidError, match="classifier.weight has shape"):
        load_weights(model, state, spec, "test")


def test_a_test_only_manifest_builds_a_one_class_head_without_torch_warnings(tmp_path, recwarn, capsys):
    """No training identities (a cross-dataset test manifest): testing builds without torch's zero-element warning
    and still loads every tensor of a checkpoint but its classifier."""
    source = build_method(_cfg(), _info(5)).model
    _save(source, tmp_path / "ckpt")
    built = build_method(_cfg(), _info(0), tmp_path / "ckpt")
    assert not [w for w in recwarn if "zero-element" in str(w.message)]
    own = built.model.state_dict()
    for k, v in source.state_dict().items():
        if own[k].shape == v.shape:
            assert torch.equal(own[k], v), k
    assert "is not loaded" in capsys.readouterr().out
