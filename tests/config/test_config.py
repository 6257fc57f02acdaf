import pytest
import yaml

from reid.config import ConfigError, absolute_paths, build_config, save_config, validate_overrides
from reid.config.loader import parse_override


def test_override_parsing_types():
    assert parse_override("data.seq_len=8") == ("data.seq_len", 8)
    assert parse_override("optim.lr=3e-4") == ("optim.lr", 3e-4)
    assert parse_override("scheduler.milestones=[10, 20]") == ("scheduler.milestones", [10, 20])
    assert parse_override("eval.rerank=true") == ("eval.rerank", True)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("data.seq_len")


def test_overrides_reach_sections_and_method_params():
    cfg = build_config("baseline", [], ["data.seq_len=6", "model.depth=18", "loss.triplet_margin=0.5"])
    assert cfg.data.seq_len == 6 and cfg.model["depth"] == 18 and cfg.loss["triplet_margin"] == 0.5
    # defaults of the method's parameter classes are filled in, so the saved config is complete
    assert cfg.loss["label_smoothing"] == 0.1


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        build_config("baseline", [], ["data.seqlen=8"])
    msg = str(err.value)
    assert "data.seqlen" in msg and "seq_len" in msg and "ids_per_batch" in msg


def test_unknown_method_param_names_allowed_ones():
    with pytest.raises(ConfigError) as err:
        build_config("baseline", [], ["model.sigma=0.3"])
    assert "model.sigma" in str(err.value) and "depth" in str(err.value)


def test_wrong_type_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="data.seq_len"):
        build_config("baseline", [], ["data.seq_len=abc"])
    with pytest.raises(ConfigError, match="model.depth"):
        build_config("baseline", [], ["model.depth=19"])


def test_unknown_method_lists_known_methods():
    with pytest.raises(ConfigError, match="known methods: .*baseline"):
        build_config("nosuchmethod", [], [])


def test_missing_config_file_is_clear():
    with pytest.raises(ConfigError, match="not found"):
        build_config("baseline", ["/nonexistent/x.yaml"], [])


def test_saved_config_round_trips(tmp_path):
    cfg = build_config("baseline", ["baseline-synthetic"], ["seed=3"])
    path = save_config(cfg, tmp_path / "config.yaml")
    again = build_config(None, [path], [])
    assert again == cfg
    assert yaml.safe_load(path.read_text())["method"] == "baseline"


def test_search_space_goes_through_same_validation():
    cfg = build_config("baseline", [], [])
    ok = validate_overrides(cfg, {"loss.triplet_margin": 0.4, "data.seq_len": 4})
    assert ok.loss["triplet_margin"] == 0.4
    with pytest.raises(ConfigError, match="loss.margin"):
        validate_overrides(cfg, {"loss.margin": 0.4})


def test_run_name_is_deterministic():
    a = build_config("baseline", [], ["seed=1"])
    b = build_config("baseline", [], ["seed=1"])
    assert a.run_name() == b.run_name() == "baseline-default-synthetic-s1"


def test_run_config_saved_with_the_removed_output_dir_still_loads(tmp_path):
    """`output_dir` was never read and is gone from the schema; configs saved by older runs still load."""
    old = tmp_path / "config.yaml"
    old.write_text(yaml.safe_dump({**build_config("baseline").model_dump(mode="json"), "output_dir": "runs"}))
    assert build_config(None, [old]).method == "baseline"
    with pytest.raises(ConfigError, match="unknown key 'output_dir'"):
        build_config("baseline", [], ["output_dir=runs"])


def test_absolute_paths_resolve_local_paths_and_keep_uris_and_links(tmp_path, monkeypatch):
    """What a run's config.yaml and a Tune trial record: every local path absolute, as written otherwise."""
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = build_config("baseline", ["baseline-synthetic"], [
        "data.root=data/x", "ray.storage_path=runs", f"train.init_from={tmp_path}/link/../link/run",
        "model.weights_path=~/w.pth", "data.manifest=s3://bucket/m.parquet"])
    out = absolute_paths(cfg)
    assert out.data.root == str(tmp_path / "data" / "x") and out.ray.storage_path == str(tmp_path / "runs")
    assert out.train.init_from == str(tmp_path / "link" / "run")  # `..` folded, the link kept (not resolved)
    assert out.model["weights_path"] == str(tmp_path / "home" / "w.pth")
    assert out.data.manifest == "s3://bucket/m.parquet"
    assert absolute_paths(out) is out  # nothing left to change
    unset = absolute_paths(build_config("baseline", [], ["data.root=/abs/x"]))
    assert unset.data.manifest is None and unset.data.root == "/abs/x"
