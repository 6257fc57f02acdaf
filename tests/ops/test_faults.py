"""Fault injection on the real head node (conftest `head`), with this test process as the Ray driver: corrupt videos
past the data threshold and a truncated manifest. (Corrupt videos under the threshold and a NaN loss:
test_storage_train.py; a Train worker process SIGKILLed mid-epoch and a lost worker node, each restored from its
checkpoint to the weights of the uninterrupted run: test_node_failure.py.)
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from reid.data.records import ManifestError, read_manifest
from reid.data.validation import with_validation_split
from reid.errors import ReidError
from reid.training.api import train
from tests.ops.helpers import checkpoint_dirs, damage_first_batch, tiny_config

pytestmark = pytest.mark.ray


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_corrupt_videos_past_the_threshold_fail_the_run_naming_it_and_are_listed(driver, ops_data, tmp_path, capfd):
    # under the threshold they are skipped and the run goes on: the bucket run of test_storage_train.py
    data = tmp_path / "data"
    shutil.copytree(ops_data, data)
    one_worker = ("ray.num_workers=1", "train.epochs=1", "data.batches_per_epoch=2")
    held_out = tiny_config(data, tmp_path / "runs", "corrupt-strict").data.val_identities
    n_train = len(with_validation_split(read_manifest(data), held_out).by_role("train"))
    strict_fraction = f"{1.5 / n_train:.4f}"  # tolerates one unreadable tracklet, not two
    strict = tiny_config(data, tmp_path / "runs", "corrupt-strict", *one_worker,
                         f"data.max_errored_fraction={strict_fraction}")
    victims = damage_first_batch(strict)
    expected = (f"2 of {n_train} training tracklets could not be decoded, more than "
                f"data.max_errored_fraction={float(strict_fraction):g}")
    with pytest.raises(ReidError, match=re.escape(expected)):
        train(strict)  # the data threshold is named, although Ray truncates the worker's own error snippet
    assert (f"[reid] skipped 2 unreadable training tracklet(s) (data.max_errored_fraction={float(strict_fraction):g})"
            in capfd.readouterr().out)
    bad = json.loads((tmp_path / "runs" / "corrupt-strict" / "unreadable.json").read_text())
    assert sorted(int(k) for k in bad) == victims, bad


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_truncated_manifest_fails_before_any_worker_starts(driver, ops_data, tmp_path):
    cut = tmp_path / "cut.parquet"
    data = (ops_data / "manifest.parquet").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    cfg = tiny_config(ops_data, tmp_path / "runs", "truncated", f"data.manifest={cut}")
    with pytest.raises(ManifestError, match="is it truncated"):
        train(cfg)
    run_dir = tmp_path / "runs" / "truncated"
    assert not run_dir.exists() or not checkpoint_dirs(run_dir)
