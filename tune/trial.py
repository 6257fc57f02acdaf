"""The Tune trainable shared by sweeps and ablation grids: one trial = one `reid.training.api.train(cfg)` run.

Following Ray's Train + Tune interop model (a function trainable that runs the training driver):
- `ray.num_workers == 0`: the trial trains in its own process; every epoch's metrics go to `ray.tune.report`.
- `ray.num_workers > 0`: the trial builds and fits a TorchTrainer (`reid.training.driver.fit_ray`) with
  `TuneReportCallback`, which forwards rank 0's per-epoch metrics to Tune.
The run name is derived from the Tune trial id (no timestamp), so a retried or restored trial resumes its own run
from its latest checkpoint instead of starting over.
Every epoch reports the validation metrics (held-out training identities, reid.data.validation: what ASHA and the
objective select on); the test split is evaluated once at the end of the run, with the checkpoint chosen on
validation, and reported last as `test/*` (its per-query AP and first-match ranks are in the run's test.json, which
the ablation statistics resample).
Runs go to `runs_dir`, a local directory or a URI (then `train` lands each run there, in-process trials too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# keys of a trial's `config` that are not config overrides
ROW_KEY = "row"


def trial_overrides(config: dict[str, Any], rows: dict[str, dict[str, Any]] | None,
                    tied: dict[str, tuple[float, str]] | None, fixed: dict[str, Any] | None) -> dict[str, Any]:
    """Dotted overrides of a trial: a grid row's overrides (ablation) or fixed + sampled + tied keys (search)."""
    out: dict[str, Any] = dict(fixed or {})
    if rows is not None and ROW_KEY in config:
        out.update(rows[config[ROW_KEY]]["overrides"])
    out.update({k: v for k, v in config.items() if k != ROW_KEY})
    for key, (factor, source) in (tied or {}).items():
        out[key] = factor * out[source]
    return out


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}


def selected_checkpoint(run_dir: Path | str) -> Path | str | None:
    """The run's checkpoint chosen on the validation split (its best), else its newest; a URI for a run stored
    under one."""
    from reid import storage
    from reid.evaluation.run.discovery import latest_checkpoint

    best = storage.join(run_dir, "best")
    return storage.as_location(best) if storage.is_dir(best) else latest_checkpoint(run_dir)


def run_trial(config: dict[str, Any], *, base: dict[str, Any], run_prefix: str, runs_dir: str,
              rows: dict[str, dict[str, Any]] | None = None, tied: dict[str, tuple[float, str]] | None = None,
              fixed: dict[str, Any] | None = None) -> None:
    """Body of every trial. `base` is the resolved config (absolute paths); `rows` maps an ablation row id to
    {"overrides": {...}, "test_overrides": {...} | None, "test_config": path | None}."""
    import ray.tune

    from reid import storage
    from reid.config import ExperimentConfig, build_config, validate_overrides
    from reid.evaluation.run.discovery import local_config
    from reid.evaluation.run.evaluate import TEST_FILE, evaluate, test_document
    from reid.ray_runtime import quiet_teardown
    from reid.training.api import train

    quiet_teardown()
    trial_id = ray.tune.get_context().get_trial_id()
    overrides = trial_overrides(config, rows, tied, fixed)
    cfg = validate_overrides(ExperimentConfig.model_validate(base),
                             {**overrides, "name": f"{run_prefix}-{trial_id}", "ray.storage_path": runs_dir})
    last: dict[str, Any] = {}

    def on_epoch(metrics: dict[str, Any], checkpoint_dir: Path | str | None) -> None:
        last.clear()
        last.update(_scalars(metrics))
        if checkpoint_dir is not None:
            last["checkpoint_path"] = str(checkpoint_dir)
        ray.tune.report(dict(last))

    # ablation rows report the test split (once, at the end); sweeps compare validation scores only
    tested = rows is not None
    if cfg.ray.num_workers == 0:
        result = train(cfg, on_epoch=on_epoch, test=tested)
    else:
        from ray.tune.integration.ray_train import TuneReportCallback

        result = train(cfg, callbacks=[TuneReportCallback()], test=tested)
        last.update(_scalars(result.final))
    row = rows.get(config.get(ROW_KEY)) if rows is not None else None
    test = result.test
    if row and (row.get("test_overrides") or row.get("test_config")):
        # cross-dataset / single-image rows: the test split under the row's test settings replaces the run's own
        files = [str(local_config(result.run_dir))] + ([row["test_config"]] if row.get("test_config") else [])
        test_cfg = validate_overrides(build_config(cfg.method, files), row.get("test_overrides") or {})
        checkpoint = selected_checkpoint(result.run_dir)
        doc = test_document(evaluate(test_cfg, checkpoint, progress=False), checkpoint)
        storage.write_text(storage.join(result.run_dir, TEST_FILE), json.dumps(doc))
        test = doc["metrics"]
    if test:
        ray.tune.report({**last, **{f"test/{k}": v for k, v in test.items() if isinstance(v, int | float)}})
