"""Attribute schemas: named groups of attribute columns, ID-relevant or ID-irrelevant.

A dataset's attributes are integer columns (a binary attribute has 2 classes, a multi-class one such as top colour
has C). Columns are gathered in named groups (adfta's N groups; asanet's ID-relevant vs ID-irrelevant split).
A batch carries `attributes` as int64 [B, num_columns] in schema column order, -1 where a label is missing.

Methods that train one-vs-rest binaries (adfta, asanet) expand a group into a multi-hot target with
`group_targets`: a binary column contributes 1 unit, a C-class column contributes C units.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["relevant", "irrelevant"]


@dataclass(frozen=True)
class AttributeColumn:
    name: str
    num_classes: int

    @property
    def width(self) -> int:
        """Units in the one-vs-rest expansion: 1 for a binary column, C otherwise."""
        return 1 if self.num_classes == 2 else self.num_classes


@dataclass(frozen=True)
class AttributeGroup:
    name: str
    kind: Kind
    columns: tuple[AttributeColumn, ...]

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)


@dataclass(frozen=True)
class AttributeSchema:
    groups: tuple[AttributeGroup, ...] = field(default_factory=tuple)

    @property
    def columns(self) -> list[AttributeColumn]:
        return [c for g in self.groups for c in g.columns]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def by_kind(self, kind: Kind) -> list[AttributeGroup]:
        return [g for g in self.groups if g.kind == kind]

    def column_slice(self, group: AttributeGroup) -> slice:
        """Positions of a group's columns in the [B, num_columns] attribute tensor."""
        start = 0
        for g in self.groups:
            if g is group or g.name == group.name:
                return slice(start, start + len(g.columns))
            start += len(g.columns)
        raise KeyError(group.name)

    def to_json(self) -> str:
        return json.dumps([asdict(g) for g in self.groups])

    @classmethod
    def from_json(cls, text: str | None) -> AttributeSchema:
        if not text:
            return cls()
        groups = []
        for g in json.loads(text):
            cols = tuple(AttributeColumn(c["name"], int(c["num_classes"])) for c in g["columns"])
            groups.append(AttributeGroup(g["name"], g["kind"], cols))
        return cls(tuple(groups))


def group_targets(values: np.ndarray, group: AttributeGroup, schema: AttributeSchema) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest targets of one group.

    Args:
        values: int [B, num_columns] attribute labels in schema column order, -1 = missing.
    Returns:
        targets float32 [B, group.width] (multi-hot) and a mask float32 [B, group.width] (0 where missing).
    """
    cols = values[:, schema.column_slice(group)]
    b = values.shape[0]
    targets = np.zeros((b, group.width), dtype=np.float32)
    mask = np.ones((b, group.width), dtype=np.float32)
    offset = 0
    for j, col in enumerate(group.columns):
        v = cols[:, j]
        missing = v < 0
        if col.num_classes == 2:
            targets[:, offset] = (v == 1)
            mask[missing, offset] = 0
        else:
            rows = np.nonzero(~missing)[0]
            targets[rows, offset + v[rows]] = 1
            mask[missing, offset:offset + col.num_classes] = 0
        offset += col.width
    return targets, mask
