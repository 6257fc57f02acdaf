"""Search spaces: parsing, up-front validation through the `reid train` override path (no Ray, no training)."""

from __future__ import annotations

import pytest

from reid.config import ConfigError, build_config
from reid.errors import ReidError
from tune.spaces import BUILTIN_SPACES, load_space, parse_distribution, space_from_mapping, validate_space


@pytest.fixture(scope="module")
def cfg():
    return build_config("asanet", ["asanet-synthetic"])


@pytest.mark.timeout(60)
def test_parse_distributions():
    d = parse_distribution("loss.lambda_pmi", "loguniform(1e-3, 5e-2)")
    assert (d.kind, d.args) == ("loguniform", (1e-3, 5e-2)) and d.log_scale
    assert parse_distribution("data.seq_len", "choice([2, 4])").args == (2, 4)
    assert parse_distribution("data.seq_len", [4, 8]).kind == "choice"
    assert parse_distribution("data.seq_len", "randint(2, 9)").probe_values() == [2, 8]
    lo, mid, hi = parse_distribution("x", "uniform(0.0, 1.0)").probe_values()
    assert lo == 0.0 and mid == 0.5 and 0.999 < hi < 1.0
    for bad in ("normal(0, 1)", "uniform(1, 0)", "loguniform(0, 1)", "uniform(a, 1)", "randint(1.5, 3)", "choice([])"):
        with pytest.raises(ReidError):
            parse_distribution("x", bad)


@pytest.mark.timeout(120)
def test_every_builtin_space_validates_against_its_synthetic_recipe():
    for name, data in BUILTIN_SPACES.items():
        space = load_space(name)
        validate_space(space, build_config(data["method"], [f"{data['method']}-synthetic"]))


@pytest.mark.timeout(60)
def test_typo_in_a_key_is_rejected_naming_the_key(cfg):
    space = space_from_mapping("typo", {"method": "asanet", "params": {"loss.lamda_pmi": "loguniform(1e-3, 5e-2)"}})
    with pytest.raises(ConfigError, match="lamda_pmi") as err:
        validate_space(space, cfg)
    assert "lambda_pmi" in str(err.value)  # the allowed keys are listed


@pytest.mark.timeout(60)
def test_out_of_range_bound_is_rejected(cfg):
    space = space_from_mapping("neg", {"params": {"loss.lambda_bce": "uniform(-1.0, 2.0)"}})
    with pytest.raises(ConfigError, match="lambda_bce"):
        validate_space(space, cfg)
    bad_choice = space_from_mapping("T", {"params": {"data.seq_len": "choice([4, 0])"}})
    with pytest.raises(ConfigError, match="seq_len=0"):
        validate_space(bad_choice, cfg)


@pytest.mark.timeout(60)
def test_space_for_another_method_is_rejected(cfg):
    with pytest.raises(ReidError, match="written for method 'adfta'"):
        validate_space(load_space("adfta"), cfg)


@pytest.mark.timeout(60)
def test_tied_and_fixed_keys():
    space = load_space("asanet")
    out = space.overrides({"loss.lambda_pmi": 0.02, "loss.lambda_cent": 1e-3, "loss.lambda_bce": 1.0,
                           "loss.weight_wrt": 1.0, "data.seq_len": 4})
    assert out["loss.lambda_pmi_raised"] == pytest.approx(0.04)
    with pytest.raises(ReidError, match="not searched"):
        space_from_mapping("x", {"params": {"a.b": "uniform(0, 1)"}, "tied": {"c.d": "2 * e.f"}})
    s = space_from_mapping("x", {"params": {"loss.margin": "uniform(1, 2)"}, "fixed": {"train.epochs": 3}})
    assert s.overrides({"loss.margin": 1.5}) == {"train.epochs": 3, "loss.margin": 1.5}


@pytest.mark.timeout(60)
def test_space_file(tmp_path, cfg):
    f = tmp_path / "mine.yaml"
    f.write_text("method: asanet\nparams:\n  loss.lambda_cent: loguniform(1e-4, 1e-3)\n")
    space = load_space(str(f))
    assert space.name == "mine" and list(space.params) == ["loss.lambda_cent"]
    validate_space(space, cfg)
    with pytest.raises(ReidError, match="unknown search space"):
        load_space("no-such-space")


@pytest.mark.timeout(120)
def test_run_search_rejects_an_invalid_space_before_ray_starts(tmp_path):
    import ray

    from tune.search import SearchOptions, run_search

    cfg = build_config("baseline", ["baseline-synthetic"], [f"data.root={tmp_path / 'never-generated'}"])
    was_running = ray.is_initialized()
    bad = space_from_mapping("bad", {"method": "baseline", "params": {"loss.triplet_margn": "uniform(0.1, 0.5)"}})
    with pytest.raises(ConfigError, match="triplet_margn"):
        run_search(cfg, bad, SearchOptions(trials=2, out=tmp_path))
    bad_t = space_from_mapping("T", {"method": "baseline", "params": {"data.seq_len": "choice([2, -1])"}})
    with pytest.raises(ConfigError, match="seq_len"):
        run_search(cfg, bad_t, SearchOptions(trials=2, out=tmp_path))
    assert ray.is_initialized() == was_running  # nothing was started
    assert not (tmp_path / "never-generated").exists() and not (tmp_path / "baseline-bad").exists()
