"""The adfta recipes' crops show the person (issue 17: adfta's ID loss stayed at ln(60) on a 64x32 set because the
inherited 144x72 resize made every 64x32 random crop show about a fifth of the person)."""

from __future__ import annotations

import pytest

from reid.config import build_config
from reid.config.loader import list_packaged_configs


def crop_area_fraction(cfg) -> float:
    """Share of the resized frame's area that one random training crop keeps."""
    d, a = cfg.data, cfg.data.augment
    return (d.height / (a.resize_height or d.height)) * (d.width / (a.resize_width or d.width))


def test_the_issue_probe_crop_is_flagged():
    probe = build_config("adfta", ["adfta-synthetic"], ["data.height=64", "data.width=32"])
    assert crop_area_fraction(probe) < 0.25  # what the issue's probe trained on


@pytest.mark.parametrize("name", [n for n in list_packaged_configs() if n.startswith("adfta")])
def test_every_adfta_recipe_crop_keeps_most_of_the_frame(name):
    cfg = build_config("adfta", [name], [])
    # the paper's 256x128 crop of 288x144 keeps 79 %
    assert crop_area_fraction(cfg) >= 0.75, (name, cfg.data.height, cfg.data.augment.resize_height)


def test_cpu_suite_recipe_is_small_and_random_init():
    cfg = build_config("adfta", ["adfta-synth-cpu"], [])
    assert (cfg.data.height, cfg.data.width, cfg.data.seq_len) == (64, 32, 4)
    assert cfg.model["pretrained"] is False and cfg.data.synth_preset == "quality"
