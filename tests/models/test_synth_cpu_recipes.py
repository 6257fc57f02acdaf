"""The CPU suite recipes (issue 17 item 2) learn: a short in-process run of the baseline recipe beats the untrained
model's test mAP. On the tiny synthetic set (a suite takes a minute to render and minutes to evaluate); P=4 so that
the tiny set's 12 training identities give 3 batches an epoch. 91 s on the loaded 2-core machine (2026-12-02)."""

from __future__ import annotations

import pytest

from tests.models.shared import short_run_against_untrained


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_baseline_suite_recipe_learns(tmp_path):
    history, untrained, tested = short_run_against_untrained(
        "baseline", "baseline-synth-cpu", tmp_path, "data.ids_per_batch=4", "train.epochs=10",
        "scheduler.milestones=[7]")
    assert history[-1]["loss"] < history[0]["loss"]
    assert tested["mAP"] > untrained["mAP"]
