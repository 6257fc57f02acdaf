"""Registries: one implementation (`Registry`) for the methods' table (`METHODS`) and the evaluation protocols.

The methods' table is a leaf, so that a method file registers itself (`@register_method`) without importing the
lookup.

`reid.registry.get_method` loads `reid.models` (every method file registers itself there) and reads this table.
The table lives apart from that lookup so that the method files import only leaves (`reid.spec`, this module):
with the table inside the lookup module, the lookup would import the models and the models the lookup (a loop).
Inspired by timm's `register_model` / fast-reid's registry: registering a name twice is an error, and a miss names
the known entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from reid.errors import ConfigError
from reid.spec import DataInfo, MethodSpec, ReidModel

T = TypeVar("T")
B = TypeVar("B", bound=Callable[[Any, DataInfo], ReidModel])


class Registry(Generic[T]):
    """Named entries of one kind ("method", ...): `add` once per name, `get` with an error naming the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'; known {self.kind}s: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(**spec: Any) -> Callable[[B], B]:
    """Decorator (timm's `@register_model`): the decorated function (typed params, DataInfo) -> model is the
    method's model builder and its name the method's name; `spec` holds the other `MethodSpec` fields.

        @register_method(model_params=BaselineParams, loss_params=..., objective=..., classifier="neck.classifier")
        def baseline(params: BaselineParams, info: DataInfo) -> Baseline: ...
    """
    def add(builder: B) -> B:
        METHODS.add(builder.__name__, MethodSpec(name=builder.__name__, model=builder, **spec))
        return builder
    return add

