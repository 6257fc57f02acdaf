"""Attribute files: the binary attribute CSVs that `reid transfer-attributes` writes (adfta section 3.2).

The attribute schema itself (named groups of columns) lives in the leaf module `reid.attribute_schema`; its names
are re-exported here so that `reid.data.attributes` callers keep working.
"""

from __future__ import annotations

import json
from pathlib import Path

from reid.attribute_schema import (  # noqa: F401  (re-exported: the schema lives in a leaf module)
    COLUMN_GROUPS,
    GROUP_ORDER,
    AttributeColumn,
    AttributeGroup,
    AttributeSchema,
    Kind,
    group_targets,
    schema_from_binary_groups,
    schema_from_columns,
)
from reid.errors import ReidError

# --- Binary attribute files (written by `reid transfer-attributes`, adfta section 3.2) ---------------------------
# `<name>.csv`: header `person_id,camera_id,tracklets_id,<binary attribute>...`, one row per tracklet keyed like the
# MARS attribute CSV (raw pid, raw camera, tracklet number = TrackletRecord.tracklet_no), values 0 / 1 (-1 missing).
# `<name>.groups.json` beside it: {group name: [binary attribute names]}; groups named motion / pose are
# ID-irrelevant, every other group ID-relevant.
BINARY_KEY_COLUMNS = ("person_id", "camera_id", "tracklets_id")


def binary_groups_path(csv_path: str | Path) -> Path:
    """The groups JSON that belongs to a binary attribute CSV: `x.csv` -> `x.groups.json`."""
    return Path(csv_path).with_suffix(".groups.json")


def read_binary_attribute_file(csv_path: str | Path
                               ) -> tuple[AttributeSchema, dict[tuple[int, int, int], dict[str, int]]]:
    """Read a binary attribute CSV and its groups JSON -> (schema, {(pid, camid, tracklet_no): {column: 0/1}})."""
    path = Path(csv_path)
    gpath = binary_groups_path(path)
    if not path.is_file() or not gpath.is_file():
        raise ReidError(f"binary attribute file: expected {path} and {gpath} (written by reid transfer-attributes)")
    try:
        groups = json.loads(gpath.read_text())
    except json.JSONDecodeError as exc:
        raise ReidError(f"{gpath} is not valid JSON: {exc}") from None
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        raise ReidError(f"{gpath} must map group names to lists of attribute names")
    schema = schema_from_binary_groups(groups)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    header = [h.strip() for h in lines[0].split(",")] if lines else []
    if tuple(header[:3]) != BINARY_KEY_COLUMNS:
        raise ReidError(f"{path}: the header must start with {','.join(BINARY_KEY_COLUMNS)}; got {header[:3]}")
    missing = [c for c in schema.column_names if c not in header[3:]]
    if missing:
        raise ReidError(f"{path}: columns {missing} named in {gpath.name} are missing")
    values: dict[tuple[int, int, int], dict[str, int]] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        try:
            nums = [int(v) for v in fields]
        except ValueError:
            raise ReidError(f"{path}, line {lineno}: non-integer field") from None
        if len(nums) != len(header) or any(v not in (-1, 0, 1) for v in nums[3:]):
            raise ReidError(f"{path}, line {lineno}: expected {len(header)} fields with attribute values -1/0/1")
        key = (nums[0], nums[1], nums[2])
        if key in values:
            raise ReidError(f"{path}, line {lineno}: duplicate key (pid, camera, tracklet) {key}")
        row = dict(zip(header[3:], nums[3:], strict=True))
        values[key] = {c: row[c] for c in schema.column_names}
    return schema, values
