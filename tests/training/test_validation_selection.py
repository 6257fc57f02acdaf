"""Selection never reads the test split (issue 17, item 7): with the test tracklets' videos shuffled among the test
identities (a poisoned test split), a run validates, picks its best checkpoint and reports per epoch exactly as on the
clean data; only the test numbers, evaluated once at the end, change."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reid.data.records import read_manifest, write_manifest
from reid.training.api import train

MEDIA = ("video", "frame_start", "frames", "num_frames", "shard", "shard_row", "keypoints")


def _poisoned_copy(manifest_path, out):
    """The manifest with every test record (roles query, gallery) showing the next test record's frames."""
    m = read_manifest(manifest_path)
    test = [i for i, r in enumerate(m.records) if r.role in ("query", "gallery")]
    records = list(m.records)
    for a, b in zip(test, test[1:] + test[:1], strict=True):
        records[a] = replace(m.records[a], **{k: getattr(m.records[b], k) for k in MEDIA})
    m.records = records
    return write_manifest(m, out)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_poisoned_test_split_leaves_validation_and_the_chosen_checkpoint_unchanged(tiny_data, tmp_path, tiny_config):
    epochs = ["train.epochs=3", "train.eval_every=1", "train.keep_checkpoints=3"]
    clean = train(tiny_config(tiny_data, tmp_path / "clean", *epochs, "name=run"))
    poisoned_manifest = _poisoned_copy(tiny_data / "manifest.parquet", tmp_path / "poisoned" / "manifest.parquet")
    poisoned = train(tiny_config(tiny_data, tmp_path / "poisoned", *epochs, "name=run",
                                 f"data.manifest={poisoned_manifest}"))
    vals = [[h["val/mAP"] for h in r.history] for r in (clean, poisoned)]
    assert len(vals[0]) == 3 and vals[0] == pytest.approx(vals[1], abs=1e-6)
    best = [[h["is_best"] for h in r.history] for r in (clean, poisoned)]
    assert best[0] == best[1] and clean.best_map == pytest.approx(poisoned.best_map, abs=1e-6)
    # the validation identities are training identities, none of them in the test split
    m = read_manifest(clean.run_dir / "manifest-val.parquet")
    val_pids = {r.pid for r in m.records if r.extra.get("val_split") == "1"}
    assert val_pids and not val_pids & {r.pid for r in m.records if r.role in ("query", "gallery")}
    # the test split is evaluated once, at the end, and reported apart: it does see the poison
    for r in (clean, poisoned):
        summary = json.loads((r.run_dir / "summary.json").read_text())
        assert summary["test"]["mAP"] == pytest.approx(r.test["mAP"]) and "test/mAP" not in r.history[-1]
        per_query = json.loads((r.run_dir / "test.json").read_text())["per_query"]
        assert len(per_query["ap"]) == r.test["queries"]
    assert clean.test["mAP"] != pytest.approx(poisoned.test["mAP"], abs=1e-3)
