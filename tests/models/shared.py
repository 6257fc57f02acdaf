"""Shared bodies of the method tests: the ablation specs resolve, a short CPU run learns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reid.config import build_config

# the RCN methods (fcnta, astpn) at a quarter of their input size, 8 pair batches per epoch, no rate decay
SMALL_RCN_INPUT = ("data.batches_per_epoch=8", "data.seq_len=4", "data.test_chunk_len=4", "data.height=32",
                   "data.width=24", "data.augment.resize_height=36", "data.augment.resize_width=28",
                   "scheduler.milestones=[100]")


def short_run_against_untrained(method: str, config: str, tmp_path: Path, *overrides: str
                                ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Train `method` with the packaged `config` on the tiny synthetic set (generated under `tmp_path`) in this
    process, and evaluate the same config untrained. Returns (the run's per-epoch history, the untrained metrics,
    the trained run's test metrics). `data.val_identities=0`: the tiny set's 12 training identities all train and the
    last epoch is tested, the measurement these tests made before the validation split existed."""
    from reid.evaluation.run.evaluate import evaluate
    from reid.training import api

    cfg = build_config(method, [config], [f"data.root={tmp_path / 'synth'}", "data.synth_preset=tiny",
                                          "ray.num_workers=0", f"ray.storage_path={tmp_path / 'runs'}",
                                          "data.val_identities=0", *overrides])
    untrained = evaluate(cfg, checkpoint=None)
    result = api.train(cfg)
    return result.history, untrained.metrics, result.test


def check_siamese_ablation_spec(method: str, table: str) -> None:
    """Every row of tune/ablations/<table>.yaml names a variant of `method`, gives paper numbers only for the CMC
    metrics the spec lists, and resolves to a valid config (with the spec's cross-dataset `test_config`, if any)."""
    from reid.registry import get_method

    spec = yaml.safe_load((Path(__file__).parents[2] / "tune" / "ablations" / f"{table}.yaml").read_text())
    assert spec["method"] == method and spec["table"] == table
    for row in spec["rows"]:
        assert row["variant"] in get_method(method).variants
        assert set(row["paper"]) <= set(spec["metrics"]) == {"R1", "R5", "R10", "R20"}
        build_config(method, [spec["test_config"]] if "test_config" in spec else [],
                     [f"variant={row['variant']}"] + [f"{k}={v}" for k, v in row["overrides"].items()])
    assert any(row["paper"] for row in spec["rows"])
