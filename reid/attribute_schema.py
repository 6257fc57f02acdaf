"""The attribute schema: named groups of attribute columns, ID-relevant or ID-irrelevant. A leaf module (imports
nothing from reid): datasets build schemas (`reid.data`), losses and models read them, neither through the other.

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


# Column name (as in the MARS / Duke attribute CSVs, and the synthetic set's extra columns) -> (group, kind).
# Groups follow table 1 of the adfta paper (N = 6: gender & age, head-shoulder, up-body, low-body, shoes,
# attach); motion and pose are the ID-irrelevant groups of ASA-Net. The 7 quality flags of the extended CSVs
# (occlusion, cut-out, ...) describe the tracklet, not the person, and are left out of the schema.
COLUMN_GROUPS: dict[str, tuple[str, Kind]] = {
    "gender": ("gender_age", "relevant"),
    "age": ("gender_age", "relevant"),
    "hat": ("head", "relevant"),
    "hair": ("head", "relevant"),
    "glasses": ("head", "relevant"),
    "top color": ("upper", "relevant"),
    "top length": ("upper", "relevant"),
    "top": ("upper", "relevant"),
    "bottom color": ("lower", "relevant"),
    "bottom length": ("lower", "relevant"),
    "bottom type": ("lower", "relevant"),
    "shoes": ("shoes", "relevant"),
    "boots": ("shoes", "relevant"),
    "shoes color": ("shoes", "relevant"),
    "shoulder bag": ("attach", "relevant"),
    "backpack": ("attach", "relevant"),
    "hand bag": ("attach", "relevant"),
    "handbag": ("attach", "relevant"),
    "bag": ("attach", "relevant"),
    "motion": ("motion", "irrelevant"),
    "pose": ("pose", "irrelevant"),
}
GROUP_ORDER = ("gender_age", "head", "upper", "lower", "shoes", "attach", "motion", "pose")


def schema_from_columns(class_counts: dict[str, int]) -> AttributeSchema:
    """Group attribute columns into the project's named groups.

    Args:
        class_counts: column name -> number of classes (2 for a binary attribute), in CSV column order.
            Columns without a known group are ignored.
    """
    members: dict[str, list[AttributeColumn]] = {}
    kinds: dict[str, Kind] = {}
    for name, n in class_counts.items():
        if name not in COLUMN_GROUPS:
            continue
        group, kind = COLUMN_GROUPS[name]
        members.setdefault(group, []).append(AttributeColumn(name, int(n)))
        kinds[group] = kind
    return AttributeSchema(tuple(
        AttributeGroup(g, kinds[g], tuple(members[g])) for g in GROUP_ORDER if g in members
    ))


def schema_from_binary_groups(groups: dict[str, list[str]]) -> AttributeSchema:
    """Schema of binary columns grouped as given (in the given order)."""
    kinds = {g: k for g, k in COLUMN_GROUPS.values()}
    return AttributeSchema(tuple(
        AttributeGroup(g, kinds.get(g, "relevant"), tuple(AttributeColumn(n, 2) for n in names))
        for g, names in groups.items()
    ))
