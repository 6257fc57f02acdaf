"""In-process training (ray.num_workers=0): checkpoints, resume equivalence, NaN guard, fault markers."""

from __future__ import annotations

import pytest
import torch

from reid.evaluation.run.evaluate import evaluate
from reid.training.api import train
from reid.training.checkpoint import load_state
from reid.training.step import NonFiniteLossError


def _weights(path):
    return load_state(path)["model"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_run_reports_and_checkpoints(tiny_data, tmp_path, tiny_config):
    cfg = tiny_config(tiny_data, tmp_path, "train.epochs=2", "train.keep_checkpoints=1")
    result = train(cfg)
    assert [h["epoch"] for h in result.history] == [1, 2]
    for key in ("loss", "train/ce", "train/triplet", "lr", "clips_per_s", "data_wait_s", "val/mAP", "val/R1"):
        assert key in result.history[-1], key
    ckpts = sorted((result.run_dir / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["epoch_0002"]  # keep_checkpoints=1
    state = load_state(ckpts[0])  # weights_only=True load
    assert state["next_epoch"] == 2 and "config_yaml" in state
    assert (result.run_dir / "config.yaml").is_file() and result.best_checkpoint is not None
    outcome = evaluate(cfg, result.run_dir)
    assert 0 <= outcome.metrics["mAP"] <= 100 and outcome.metrics["valid_queries"] > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_interrupted_and_resumed_run_matches_uninterrupted(tiny_data, tmp_path, tiny_config):
    epochs = ["train.epochs=3", "train.eval_every=3"]
    full = train(tiny_config(tiny_data, tmp_path / "a", *epochs, "name=full"))
    # The same run, stopped by a failure right after epoch 2 (its checkpoint is written), then started again.
    cfg = tiny_config(tiny_data, tmp_path / "b", *epochs, "name=cut", "train.inject_fault=raise@3:1")
    with pytest.raises(RuntimeError, match="injected fault"):
        train(cfg)
    resumed = train(cfg)  # the fault fired once; re-running the same name resumes at epoch 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    a = _weights(full.run_dir / "checkpoints" / "epoch_0003")
    b = _weights(resumed.run_dir / "checkpoints" / "epoch_0003")
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
    assert full.history[-1]["loss"] == pytest.approx(resumed.history[-1]["loss"], rel=1e-5)


@pytest.mark.timeout(300)
def test_nan_loss_stops_with_a_message_naming_the_term(tiny_data, tmp_path, tiny_config):
    cfg = tiny_config(tiny_data, tmp_path, "train.epochs=2", "train.inject_fault=nan@2:1")
    with pytest.raises(NonFiniteLossError, match=r"loss term 'ce' is nan at epoch 2 step 1"):
        train(cfg)
    # the last good checkpoint (epoch 1) is intact and loadable
    state = load_state(tmp_path / cfg.run_name() / "checkpoints" / "epoch_0001")
    assert state["next_epoch"] == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_baseline_learns_on_tiny_synthetic(tiny_data, tmp_path, tiny_config):
    """The spine's proof: a short CPU run lowers the loss and beats the untrained model's mAP."""
    # data.val_identities=0: every training identity trains and the last epoch is tested (the measurement this test
    # has always made; selection on the validation split: test_validation_selection.py)
    cfg = tiny_config(tiny_data, tmp_path, "train.epochs=6", "train.eval_every=6", "data.seq_len=4",
                      "data.height=128", "data.width=64", "data.batches_per_epoch=4", "data.val_identities=0")
    untrained = evaluate(cfg, None)
    result = train(cfg)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.test["mAP"] > untrained.metrics["mAP"] + 5  # both on the test split
