"""Registries: one implementation (`Registry`) for the methods' table (`METHODS`) and the evaluation protocols.

The methods' table is a leaf, so that a method file registers itself without importing the lookup.

`reid.registry.get_method` loads `reid.models` (every method file registers itself there) and reads this table.
The table lives apart from that lookup so that the method files import only leaves (`reid.spec`, this module):
with the table inside the lookup module, the lookup would import the models and the models the lookup (a loop).
Inspired by timm's `register_model` / fast-reid's registry: registering a name twice is an error, and a miss names
the known entries.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from reid.errors import ConfigError
from reid.spec import MethodSpec

T = TypeVar("T")


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


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method to the table (each method file calls this once, at import)."""
    return METHODS.add(spec.name, spec)

