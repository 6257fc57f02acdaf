"""`api.evaluate` beyond the plain case: a checkpoint trained on another dataset (cross-dataset testing, whose ID
classifier has another size) and the query-gallery pairwise scoring of ASTPN."""

from __future__ import annotations

import pytest
import torch

from reid.config import build_config
from reid.errors import ReidError
from reid.registry import DataInfo, get_method
from reid.training.api import evaluate, load_checkpoint_weights


def _save_model_state(model: torch.nn.Module, directory) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, directory / "state.pt")


def _baseline(num_classes: int, **params) -> torch.nn.Module:
    spec = get_method("baseline")
    cfg = build_config("baseline", [], ["model.depth=18", "model.pretrained=false",
                                        *(f"model.{k}={v}" for k, v in params.items())])
    return spec.build_model(dict(cfg.model), DataInfo(num_classes=num_classes, height=64, width=32))


def test_checkpoint_of_another_dataset_loads_all_but_the_classifier(tmp_path, capsys):
    source = _baseline(num_classes=5)
    _save_model_state(source, tmp_path / "ckpt")
    target = _baseline(num_classes=7)
    load_checkpoint_weights(target, tmp_path / "ckpt")
    assert "ID classifier" in capsys.readouterr().out
    own, src = target.state_dict(), source.state_dict()
    for key, value in src.items():
        if "classifier" in key:
            assert own[key].shape != value.shape
        else:
            assert torch.equal(own[key], value), key


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    _save_model_state(_baseline(num_classes=5), tmp_path / "ckpt")
    with pytest.raises(ReidError, match="tensor\\(s\\) missing"):
        load_checkpoint_weights(_baseline(num_classes=5, depth=34), tmp_path / "ckpt")  # more blocks
    _save_model_state(_baseline(num_classes=5, depth=34), tmp_path / "ckpt")
    with pytest.raises(ReidError, match="unknown"):
        load_checkpoint_weights(_baseline(num_classes=5), tmp_path / "ckpt")
    state = _baseline(num_classes=5).state_dict()
    key = next(k for k, v in state.items() if k.startswith("backbone") and v.ndim == 4)
    state[key] = torch.zeros(1, *state[key].shape[1:])
    torch.save({"model": state}, tmp_path / "ckpt" / "state.pt")
    with pytest.raises(ReidError, match=f"{key} has shape"):  # only the classifier may differ in shape
        load_checkpoint_weights(_baseline(num_classes=5), tmp_path / "ckpt")
    state = _baseline(num_classes=5).state_dict()
    state.pop(next(iter(state)))
    torch.save({"model": state}, tmp_path / "ckpt" / "state.pt")
    with pytest.raises(ReidError, match="tensor\\(s\\) missing"):
        load_checkpoint_weights(_baseline(num_classes=5), tmp_path / "ckpt")


def _astpn_cfg(tiny_data, tmp_path, *extra: str):
    return build_config("astpn", ["astpn-synthetic"], [f"data.root={tiny_data}", f"ray.storage_path={tmp_path}",
                                                       "ray.num_workers=0", "data.seq_len=4",
                                                       "data.test_chunk_len=4", "model.hidden=16", *extra])


@pytest.mark.timeout(600)
def test_pairwise_evaluation_runs_and_equals_self_paired_without_attention(tiny_data, tmp_path):
    """Mean temporal pooling makes each sequence's vector independent of its partner: the pairwise path must then
    give the single-pass ranking; with attentive pooling it is a different (query-dependent) ranking."""
    mean = ["model.temporal_pooling=mean"]
    single = evaluate(_astpn_cfg(tiny_data, tmp_path, *mean), checkpoint=None)
    paired = evaluate(_astpn_cfg(tiny_data, tmp_path, *mean, "eval.pairwise=true"), checkpoint=None)
    assert single.distmat.shape == paired.distmat.shape
    assert torch.allclose(torch.as_tensor(single.distmat), torch.as_tensor(paired.distmat), atol=1e-3)  # sqrt near 0
    assert single.metrics["mAP"] == pytest.approx(paired.metrics["mAP"], abs=1e-6)

    attentive = evaluate(_astpn_cfg(tiny_data, tmp_path, "eval.pairwise=true"), checkpoint=None)
    assert attentive.distmat.shape == single.distmat.shape and attentive.metrics["valid_queries"] > 0


def test_pairwise_with_the_ray_backend_is_a_clear_error(tiny_data, tmp_path):
    with pytest.raises(ReidError, match="--backend local"):
        evaluate(_astpn_cfg(tiny_data, tmp_path, "eval.pairwise=true"), checkpoint=None, backend="ray")
