"""Every fcnta / astpn ablation spec selects the papers' one-pair-per-step recipe the same way:
`reid tune ablation <table> --config <method>-batch1` (issue 15, item 8)."""

from __future__ import annotations

import pytest

from reid.config import validate_overrides
from tune.ablation import base_config, list_specs, load_spec, row_overrides

SIAMESE_SPECS = [t for t in list_specs() if t.startswith(("fcnta-", "astpn-"))]
PAPER_LR = {"fcnta": 1.0e-4, "astpn": 1.0e-3}  # fcnta section 4.1, astpn section 4.1.1: SGD, batch of one


def _row_configs(table: str, dataset: str, files: list[str]):
    spec = load_spec(table)
    base = base_config(spec, dataset, files, [])
    return spec, [validate_overrides(base, row_overrides(spec, row, dataset, "full", {}, None)) for row in spec.rows]


def test_every_siamese_spec_is_covered():
    assert len(SIAMESE_SPECS) == 11 and {load_spec(t).method for t in SIAMESE_SPECS} == {"fcnta", "astpn"}


@pytest.mark.parametrize("dataset", ["synthetic", "paper"])
@pytest.mark.parametrize("table", SIAMESE_SPECS)
def test_batch1_recipe_selects_one_pair_at_the_paper_rate(table, dataset):
    method = load_spec(table).method
    _, rows = _row_configs(table, dataset, [f"{method}-batch1"])
    for cfg in rows:  # no row override undoes the overlay
        assert cfg.data.pairs_per_batch == 1
        assert cfg.optim.name == "sgd" and cfg.optim.lr == pytest.approx(PAPER_LR[method])
        assert cfg.data.pair_cameras == "cross"


@pytest.mark.parametrize("table", SIAMESE_SPECS)
def test_default_is_eight_pairs_at_a_linearly_scaled_rate(table):
    method = load_spec(table).method
    _, rows = _row_configs(table, "paper", [])
    for cfg in rows:
        assert cfg.data.pairs_per_batch == 8
        assert cfg.optim.lr == pytest.approx(8 * PAPER_LR[method])
        assert cfg.data.pair_cameras == "cross"
