"""Method lookup: a method is a model factory, its parameter classes, its objective, and its variants.

Each method file in `reid/models/` registers its `MethodSpec` in the leaf table `reid.registration.METHODS` when it
is imported; `get_method` / `list_methods` import `reid.models` (which imports every method file) and read it.
The contracts (`DataInfo`, `MethodSpec`, `Params`, ...) live in the leaf `reid.spec` and are re-exported here for
callers.
"""

from __future__ import annotations

from reid.registration import METHODS, register_method
from reid.spec import DataInfo, Inputs, MethodSpec, NoParams, Params

__all__ = ["DataInfo", "Inputs", "MethodSpec", "NoParams", "Params", "get_method", "list_methods",
           "register_method"]


def _ensure_loaded() -> None:
    # Deferred on purpose, and not a loop (the method files import only leaves): importing the models loads torch
    # and torchvision, and the config loader imports this module, so a top-level import would load them into every
    # process that reads `reid.config.schema` (the decoding actors among them, which never need torch).
    import reid.models  # noqa: F401  (registers every method)


def get_method(name: str) -> MethodSpec:
    _ensure_loaded()
    return METHODS.get(name)


def list_methods() -> list[str]:
    _ensure_loaded()
    return METHODS.names()
