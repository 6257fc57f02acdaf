"""Load, override, validate and save experiment configs.

Order of precedence (later wins): the method's packaged default config, `--config` files, the named variant's
overrides, then command-line dotted overrides (`model.sigma=0.3 data.seq_len=8`). The same path validates Tune
search spaces (`validate_overrides`), so a typo in a sweep fails before any trial starts.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from reid.config.errors import ConfigError, format_validation_error
from reid.config.schema import ExperimentConfig
from reid.registry import get_method
from reid.spec import CPU_FRAME_INPUTS


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", parsed value). Values are parsed as YAML scalars/lists (`[1,2]`, `true`, `0.3`)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value (e.g. data.seq_len=8)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        # YAML 1.1 reads `3e-4` (no dot) as a string; users mean a number.
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `tree[a][b][c] = value` for key `a.b.c`, creating dicts on the way."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{key}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file: a local file, a URI (a sweep's s3://.../best_config.yaml) or a packaged config's name."""
    if "://" in str(path):
        return _read_yaml_uri(str(path))
    p = Path(path)
    if not p.is_file():
        packaged = packaged_config_path(str(path))
        if packaged is None:
            raise ConfigError(f"config file '{path}' not found (neither a file nor a packaged config; "
                              f"packaged: {', '.join(list_packaged_configs())})")
        p = packaged
    return read_yaml_mapping(p, "config file")


def _read_yaml_uri(uri: str) -> dict[str, Any]:
    from reid import storage  # pyarrow.fs: only for a config named by URI
    from reid.errors import ReidError

    try:
        if not storage.is_file(uri):
            raise ConfigError(f"config file '{uri}' not found")
        text = storage.read_text(uri)
    except ConfigError:
        raise
    except (OSError, ReidError) as exc:
        raise ConfigError(f"config file '{uri}' cannot be read: {exc}") from None
    return _yaml_mapping(text, uri, "config file")


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping at the top of the YAML file `path`; `what` names the file in errors ("config file", ...)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} '{p}' not found")
    return _yaml_mapping(p.read_text(), str(p), what)


def _yaml_mapping(text: str, name: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} '{name}' is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} '{name}' must hold a mapping at the top level")
    return data


def list_packaged_configs() -> list[str]:
    root = resources.files("reid") / "configs"
    return sorted(str(p.name)[:-5] for p in root.iterdir() if str(p.name).endswith(".yaml"))


def packaged_config_path(name: str) -> Path | None:
    stem = name[:-5] if name.endswith(".yaml") else name
    candidate = Path(str(resources.files("reid") / "configs" / f"{stem}.yaml"))
    return candidate if candidate.is_file() else None


def _validate_section(params_cls: type[BaseModel], values: dict[str, Any], section: str) -> dict[str, Any]:
    try:
        return params_cls.model_validate(values).model_dump(mode="json")
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, params_cls, prefix=f"{section}.")) from None


def resolve_config(tree: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw config tree, including the method-specific `model` and `loss` sections."""
    try:
        cfg = ExperimentConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, ExperimentConfig)) from None
    spec = get_method(cfg.method)
    if cfg.variant is not None and cfg.variant not in spec.variants:
        raise ConfigError(f"method '{cfg.method}' has no variant '{cfg.variant}'; "
                          f"variants: {', '.join(spec.variants) or '(none)'}")
    cpu = sorted(CPU_FRAME_INPUTS & spec.inputs)
    if cfg.data.jpeg_decode == "trainer" and cpu:  # the pipeline checks the manifest (batching.check_jpeg_decode)
        raise ConfigError(f"data.jpeg_decode=trainer: method '{cfg.method}' needs {cpu}, computed from frames "
                          f"decoded in the decoding actors; use data.jpeg_decode=actor")
    model = _validate_section(spec.model_params, cfg.model, "model")
    loss = _validate_section(spec.loss_params, cfg.loss, "loss")
    return cfg.model_copy(update={"model": model, "loss": loss})


def build_config(
    method: str | None = None,
    config_files: Iterable[str | Path] = (),
    overrides: Iterable[str] = (),
) -> ExperimentConfig:
    """The full precedence chain: method default < files < variant < command-line overrides."""
    tree: dict[str, Any] = {}
    files = list(config_files)
    parsed = [parse_override(o) for o in overrides]
    # The method can come from the argument, a file, or an override; the default config depends on it.
    for f in files:
        tree = deep_merge(tree, read_yaml(f))
    # `output_dir` was a field that nothing read (runs go to ray.storage_path); run configs saved before its
    # removal still carry it, and they must keep loading (`reid eval <run>`)
    tree.pop("output_dir", None)
    for key, value in parsed:
        if key in ("method", "variant"):
            tree[key] = value
    method = method or tree.get("method") or "baseline"
    spec = get_method(method)
    base = read_yaml(spec.default_config) if spec.default_config else {}
    tree = deep_merge(base, tree)
    tree["method"] = method
    variant = tree.get("variant")
    if variant is not None:
        if variant not in spec.variants:
            raise ConfigError(f"method '{method}' has no variant '{variant}'; "
                              f"variants: {', '.join(spec.variants) or '(none)'}")
        for key, value in spec.variants[variant].items():
            set_dotted(tree, key, value)
    for key, value in parsed:
        set_dotted(tree, key, value)
    return resolve_config(tree)


def validate_overrides(cfg: ExperimentConfig, overrides: Mapping[str, Any]) -> ExperimentConfig:
    """Apply dotted overrides (e.g. a Tune sample) to a resolved config and validate the result."""
    tree = cfg.model_dump(mode="json")
    variant = overrides.get("variant")
    if variant is not None:
        spec_variants = get_method(cfg.method).variants
        if variant not in spec_variants:
            raise ConfigError(f"method '{cfg.method}' has no variant '{variant}'; "
                              f"variants: {', '.join(spec_variants) or '(none)'}")
        for key, value in spec_variants[variant].items():
            set_dotted(tree, key, value)
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    return resolve_config(tree)


# the config keys that name local files or folders (each may also be a URI, or unset)
PATH_KEYS: tuple[str, ...] = ("data.root", "data.manifest", "ray.storage_path", "train.init_from",
                              "model.weights_path")


def absolute_paths(cfg: ExperimentConfig) -> ExperimentConfig:
    """`cfg` with every local path of `PATH_KEYS` absolute: relative ones (to the current directory), `~` and `..`
    folded; symbolic links kept (`/shared` may be a link on one node and a mount on another); URIs and unset keys
    as they are. A run's config.yaml records them so (`reid eval RUN`, `reid export`, ... from another directory
    read the same dataset, instead of another path or, for the synthetic set, a freshly generated copy), and Tune
    trials and Ray workers, which run in other working directories, get them."""
    tree = cfg.model_dump(mode="json")
    updates: dict[str, str] = {}
    for key in PATH_KEYS:
        node: Any = tree
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, str) and node and "://" not in node:
            absolute = os.path.abspath(os.path.expanduser(node))
            if absolute != node:
                updates[key] = absolute
    return validate_overrides(cfg, updates) if updates else cfg


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML that `reid train --config` accepts."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return p
