"""A batch too large for the worker's memory is refused before the first step (reid/training/step_memory.py): the
count on the meta device against a hand-written count on the real tensors, for every method's CPU recipe; the
model, its buffers and the RNG untouched; the memory a cgroup leaves; the error through `reid train`."""

from __future__ import annotations

import pytest
import torch

from reid.config import build_config
from reid.errors import ReidError
from reid.training import step_memory
from reid.training.step_memory import _cgroup_left, check_first_step, saved_bytes

CPU_RECIPES = {"baseline": "baseline-synthetic", "adfta": "adfta-synth-cpu", "asanet": "asanet-synth-cpu",
               "posetap": "posetap-synth-cpu", "fcnta": "fcnta-synth-cpu", "astpn": "astpn-synth-cpu"}


def _naive_saved_bytes(model, batch) -> int:
    """The real forward, each saved tensor's bytes added once per data pointer, parameters left out."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not (t.is_leaf and t.requires_grad):
            seen.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(batch)
    return sum(seen.values())


def _model_and_batch(method: str, root):
    from reid.data.batching import iter_local_batches
    from reid.data.info import data_info
    from reid.data.inputs import normalize_inputs
    from reid.data.records import read_manifest
    from reid.models.factory import build_method
    from reid.training.api import manifest_path_for

    cfg = build_config(method, [CPU_RECIPES[method]], [f"data.root={root}", "data.synth_preset=tiny",
                                                         "data.val_identities=0"])
    manifest = read_manifest(manifest_path_for(cfg))
    built = build_method(cfg, data_info(manifest, cfg.data), train=True)
    batch = normalize_inputs(next(iter(iter_local_batches(manifest, cfg.data, cfg.seed, built.spec.inputs,
                                                          built.spec.batching, 0))), built.spec, torch.device("cpu"))
    built.model.train()
    return built.model, batch


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", sorted(CPU_RECIPES))
def test_the_meta_count_is_the_real_count_and_changes_nothing(tiny_synth, method):
    model, batch = _model_and_batch(method, tiny_synth)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    projected = saved_bytes(model, batch)
    assert torch.equal(rng, torch.random.get_rng_state())
    for key, value in model.state_dict().items():  # BatchNorm's running statistics included
        assert value.device.type == "cpu" and torch.equal(value, before[key]), key
    # at least the frames the first layer reads (a float copy made by the model, or the input itself)
    assert projected >= batch["frames"].numel() * 4
    assert projected == saved_bytes(model, batch, device="cpu") == _naive_saved_bytes(model, batch)


@pytest.mark.timeout(300)
def test_a_batch_past_the_budget_is_refused_with_its_numbers(tiny_synth, monkeypatch):
    model, batch = _model_and_batch("baseline", tiny_synth)
    need = saved_bytes(model, batch)
    cpu = torch.device("cpu")
    monkeypatch.setattr(step_memory, "available_bytes", lambda: int(need / step_memory.BUDGET_SHARE) + 1)
    assert check_first_step(model, batch, cpu, workers=1) == need
    with pytest.raises(ReidError) as err:  # the same memory, shared by two workers on the node
        check_first_step(model, batch, cpu, workers=2)
    b, t, _, h, w = batch["frames"].shape
    said = str(err.value)
    assert f"one training step of this batch ({b} clips x {t} frames of {h}x{w}) keeps {need / 1e9:.1f} GB" in said
    assert "shared by 2 workers on this node" in said and "lower data.seq_len" in said
    monkeypatch.setenv("REID_STEP_MEMORY_GUARD", "0")
    assert check_first_step(model, batch, cpu, workers=2) is None
    monkeypatch.delenv("REID_STEP_MEMORY_GUARD")
    assert check_first_step(model, batch, torch.device("meta"), workers=2) is None  # not a CPU: not checked
    monkeypatch.setattr(step_memory, "available_bytes", lambda: None)
    assert check_first_step(model, batch, cpu, workers=2) is None


def test_the_room_a_cgroup_leaves(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("1000000\n")
    (v2 / "memory.current").write_text("700000\n")
    (v2 / "memory.stat").write_text("anon 500000\ninactive_file 200000\nactive_file 0\n")
    assert _cgroup_left(v2) == 1000000 - (700000 - 200000)  # reclaimable page cache is room
    (v2 / "memory.max").write_text("max\n")
    assert _cgroup_left(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert _cgroup_left(v1) is None  # v1's "no limit"
    (v1 / "memory" / "memory.limit_in_bytes").write_text("4000\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text("5000\n")
    (v1 / "memory" / "memory.stat").write_text("total_inactive_file 500\n")
    assert _cgroup_left(v1) == 0  # over its limit: no room, never negative
    assert _cgroup_left(tmp_path / "none") is None


@pytest.mark.timeout(300)
def test_reid_train_refuses_the_batch_in_one_line_before_its_first_step(tiny_data, tmp_path, monkeypatch, capsys):
    from reid.cli import main

    monkeypatch.setattr(step_memory, "available_bytes", lambda: 10_000_000)  # 10 MB: no batch fits
    args = ["train", "baseline", f"data.root={tiny_data}", f"ray.storage_path={tmp_path}", "ray.num_workers=0",
            "model.depth=18", "model.pretrained=false", "data.height=64", "data.width=32", "data.seq_len=2",
            "data.ids_per_batch=2", "data.tracklets_per_id=2", "data.batches_per_epoch=2", "train.epochs=1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reid train: error: one training step of this batch (4 clips x 2 "
                                               "frames of 64x32) keeps"), err
    assert "against 0.0 GB available" in err[0]
    assert not list(tmp_path.glob("*/checkpoints/epoch_*"))  # no step ran, so no checkpoint either
