"""Typed configuration: schema, loading, overrides and validation."""

from reid.config.errors import ConfigError
from reid.config.loader import absolute_paths, build_config, resolve_config, save_config, validate_overrides
from reid.config.schema import ExperimentConfig

__all__ = ["ConfigError", "ExperimentConfig", "absolute_paths", "build_config", "resolve_config", "save_config",
           "validate_overrides"]
