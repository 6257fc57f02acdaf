"""`reid synth` knobs: validation, presets, and the command's help and errors."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from reid.commands import synth as synth_cmd
from reid.data.synth import KNOB_NAMES, PRESETS, SynthConfig, generate, make_config
from reid.errors import ReidError


def test_presets_validate_and_differ_in_size():
    sizes = {p: make_config(p) for p in PRESETS}
    assert sizes["tiny"].ids_train < sizes["demo"].ids_train < sizes["large"].ids_train
    assert sizes["large"].ids_train + sizes["large"].ids_test >= 1000
    assert (sizes["demo"].height, sizes["demo"].width) == (128, 64)
    assert sizes["demo"].source_domain and sizes["large"].source_domain and not sizes["tiny"].source_domain


@pytest.mark.parametrize("knobs, words", [
    ({"occlusion": 1.5}, "occlusion"),
    ({"jitter": -0.1}, "jitter"),
    ({"height": 65}, "even"),
    ({"width": 8}, "width"),
    ({"cameras": 1}, "cameras"),
    ({"ids_train": 2.5}, "integer"),
    ({"ids_test": True}, "integer"),
    ({"frames": 1}, "true or false"),
    ({"min_len": 20, "max_len": 10}, "min_len"),
    ({"noise": "a lot"}, "number"),
    ({"colour": 3}, "unknown synth knob"),
])
def test_invalid_knobs_raise_reid_error(knobs, words):
    with pytest.raises(ReidError, match=words):
        make_config("tiny", **knobs)


def test_unknown_preset_and_run_arguments():
    with pytest.raises(ReidError, match="tiny"):
        make_config("huge")
    with pytest.raises(ReidError, match="seed"):
        generate("/nonexistent/never-written", seed=-1)
    with pytest.raises(ReidError, match="workers"):
        generate("/nonexistent/never-written", workers=0)
    with pytest.raises(ReidError, match="decord"):  # widths decord 0.6.0 cannot read (see video.py)
        generate("/nonexistent/never-written", width=48)


def test_overrides_and_integral_floats():
    cfg = make_config("tiny", ids_train=3.0, noise=0, occlusion=None)
    assert cfg.ids_train == 3 and isinstance(cfg.ids_train, int)
    assert cfg.noise == 0 and cfg.occlusion == PRESETS["tiny"].get("occlusion", SynthConfig().occlusion)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reid synth", description=synth_cmd.DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    synth_cmd.add_arguments(p)
    return p


def test_help_documents_every_knob():
    text = _parser().format_help()
    for name in KNOB_NAMES:
        assert "--" + name.replace("_", "-") in text, name
    for f in fields(SynthConfig):  # each knob's own help sentence is shown
        assert f.metadata["help"].split()[0] in text
    for preset in PRESETS:
        assert preset in text


def test_cli_invalid_value_is_a_reid_error(tmp_path):
    args = _parser().parse_args(["--preset", "tiny", "--out", str(tmp_path / "x"), "--occlusion", "2"])
    with pytest.raises(ReidError, match="occlusion=2.0 is out of range"):
        synth_cmd.run(args)
    assert not (tmp_path / "x").exists()


def test_cli_rejects_a_foreign_non_empty_directory(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    args = _parser().parse_args(["--preset", "tiny", "--out", str(tmp_path)])
    with pytest.raises(ReidError, match="not written by `reid synth`"):
        synth_cmd.run(args)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_cli_names_an_output_it_cannot_create(tmp_path):
    (tmp_path / "file").write_text("")  # a parent that is a file: mkdir fails as on a read-only or missing mount
    args = _parser().parse_args(["--preset", "tiny", "--out", str(tmp_path / "file" / "set")])
    with pytest.raises(ReidError, match=r"cannot create the dataset directory .*/file/set: Not a directory"):
        synth_cmd.run(args)


def test_cli_generates_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "ds"
    args = _parser().parse_args(["--preset", "tiny", "--out", str(out), "--workers", "1", "--ids-train", "2",
                                 "--ids-test", "1", "--cameras", "2", "--distractors", "1", "--junk", "0",
                                 "--min-len", "4", "--max-len", "5", "--height", "32", "--width", "20",
                                 "--source-domain", "--source-images", "3"])
    assert synth_cmd.run(args) == 0
    text = capsys.readouterr().out
    assert "train tracklets" in text and "distractors (pid 0)" in text and str(out / "manifest.parquet") in text
    assert (out / "manifest.parquet").is_file() and len(list((out / "source_domain" / "images").iterdir())) == 3


def test_cli_writes_a_layout(tmp_path, capsys):
    out = tmp_path / "ilids"
    args = _parser().parse_args(["--layout", "ilidsvid", "--out", str(out), "--workers", "1", "--persons", "2",
                                 "--height", "32", "--width", "16", "--max-len", "4"])
    assert synth_cmd.run(args) == 0
    assert "person_dirs" in capsys.readouterr().out and (out / "layout.json").is_file()
