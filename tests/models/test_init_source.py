"""`train.init_from`: which checkpoint a run directory, a checkpoint directory or a file names, and one-line errors
before any training when there is none (it was `No such file or directory` or a pickle error from a worker)."""

from __future__ import annotations

import pytest
import torch

from reid.cli import main
from reid.errors import ReidError
from reid.models.state_file import STATE_FILE, init_source, load_state


def _checkpoint(directory):
    directory.mkdir(parents=True)
    torch.save({"model": {"w": torch.ones(2)}}, directory / STATE_FILE)
    return directory / STATE_FILE


def test_a_run_directory_a_checkpoint_directory_or_the_file(tmp_path):
    best = _checkpoint(tmp_path / "run" / "best")
    assert init_source(tmp_path / "run") == best
    assert init_source(tmp_path / "run" / "best") == best
    assert init_source(best) == best
    own = _checkpoint(tmp_path / "ckpt")
    assert init_source(tmp_path / "ckpt") == own  # its own state.pt, not a best/ below it


def test_nothing_there_another_kind_of_file_or_a_uri_is_one_line(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "manifest.parquet").write_bytes(b"PAR1 not a checkpoint")
    with pytest.raises(ReidError, match=r"train.init_from=.*/nothing: not found; give a run directory"):
        init_source(tmp_path / "nothing")
    with pytest.raises(ReidError, match=r"train.init_from=.*/data: a folder without state.pt or best/state.pt"):
        init_source(tmp_path / "data")
    with pytest.raises(ReidError, match=r"manifest.parquet is not a whole checkpoint .*cut short, or another kind"):
        init_source(tmp_path / "manifest.parquet")
    with pytest.raises(ReidError, match=r"manifest.parquet is not a whole checkpoint"):
        load_state(tmp_path / "manifest.parquet")
    with pytest.raises(ReidError, match=r"no checkpoint at .*/data/state.pt"):
        load_state(tmp_path / "data")
    with pytest.raises(ReidError, match=r"train.init_from=s3://b/run: a local run directory or checkpoint only"):
        init_source("s3://b/run")


def test_reid_train_checks_it_before_anything_starts(tmp_path, capsys, monkeypatch):
    import reid.training.api as api

    monkeypatch.setattr(api, "manifest_path_for", lambda cfg: pytest.fail("training went on"))
    argv = ["train", "baseline", "--config", "baseline-synth-cpu", f"ray.storage_path={tmp_path}", "name=x",
            "--init-from", str(tmp_path / "nothing")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "train.init_from=" in err and "nothing: not found" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
