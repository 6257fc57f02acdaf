"""The MARS / DukeMTMC-VideoReID video attribute CSVs (Chen, Li, Wang et al., BUAA) and their join onto records.

Three files are understood, recognised by their header:
- extended MARS (`person_id,camera_id,tracklets_id,motion,pose,<7 quality flags>,top color,...,bottom type`),
- extended Duke (`person_id,camera_id,tracklets_id,motion,pose,<7 flags>,backpack,...,bottom color,top color`),
- the 2018 MARS release (`person-id,camera,tracklet,Tops.c,Bottoms.c,Age,...`), whose columns are renamed to the
  extended names so that both MARS files map to the same schema.

The key of a row is (raw pid, raw camera, tracklet number): the `T` number of MARS file names, the tracklet folder
number of Duke. Class counts are read from the file (max value + 1, at least 2). Groups and the ID-relevant /
ID-irrelevant split come from `reid.data.attributes.schema_from_columns`; the 7 quality flags are kept in the table
(`AttributeTable.values`) but are not schema columns.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

from reid.data.attributes import (
    AttributeSchema,
    binary_groups_path,
    read_binary_attribute_file,
    schema_from_columns,
)
from reid.data.datasets.common import log, require_file
from reid.data.records import TrackletRecord
from reid.errors import ReidError

Key = tuple[int, int, int]

# header of the key columns -> the format's name
_KEY_COLUMNS = {
    ("person_id", "camera_id", "tracklets_id"): "extended",
    ("person-id", "camera", "tracklet"): "v2018",
}
# 2018 MARS column names -> extended names (same meaning, same class indices; checked on the real files)
_V2018_RENAME = {
    "Tops.c": "top color", "Bottoms.c": "bottom color", "Age": "age", "Tops.l": "top length",
    "Bottoms.l": "bottom length", "handbag": "hand bag", "Bottoms.t": "bottom type",
}


@dataclass(frozen=True)
class AttributeTable:
    """Parsed attribute CSV.

    `columns` are the attribute columns in file order (renamed to the extended names), `class_counts` maps each to
    its number of classes, `values` maps (pid, camid, tracklet_no) to the row's labels.
    """

    path: Path
    format: str
    columns: tuple[str, ...]
    class_counts: dict[str, int]
    values: dict[Key, dict[str, int]]
    fixed_schema: AttributeSchema | None = None  # binary files carry their own grouping

    @property
    def schema(self) -> AttributeSchema:
        return self.fixed_schema if self.fixed_schema is not None else schema_from_columns(self.class_counts)

    def __len__(self) -> int:
        return len(self.values)


def read_attribute_csv(path: str | Path) -> AttributeTable:
    """Parse one of the attribute CSVs; a malformed file is a ReidError naming the row.

    A CSV with a `<name>.groups.json` beside it is a binary attribute file written by `reid transfer-attributes`
    (`reid.data.attributes.read_binary_attribute_file`); its groups are taken from the JSON.
    """
    p = require_file(Path(path), "attribute CSV")
    if binary_groups_path(p).is_file():
        schema, values = read_binary_attribute_file(p)
        names = tuple(schema.column_names)
        return AttributeTable(path=p, format="binary", columns=names, class_counts={n: 2 for n in names},
                              values=values, fixed_schema=schema)
    with p.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ReidError(f"attribute CSV {p} is empty; expected a header row") from None
        fmt = _KEY_COLUMNS.get(tuple(header[:3]))
        if fmt is None:
            raise ReidError(f"attribute CSV {p}: the first columns are {header[:3]}; expected one of "
                            f"{[list(k) for k in _KEY_COLUMNS]}")
        names = [_V2018_RENAME.get(h, h) if fmt == "v2018" else h for h in header[3:]]
        values: dict[Key, dict[str, int]] = {}
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not v.strip() for v in row):
                continue
            if len(row) != len(header):
                raise ReidError(f"attribute CSV {p}, line {lineno}: {len(row)} fields, expected {len(header)}")
            try:
                nums = [int(v) for v in row]
            except ValueError:
                raise ReidError(f"attribute CSV {p}, line {lineno}: non-integer field in {row}") from None
            key = (nums[0], nums[1], nums[2])
            if key in values:
                raise ReidError(f"attribute CSV {p}, line {lineno}: duplicate key (pid, camera, tracklet) {key}")
            values[key] = dict(zip(names, nums[3:], strict=True))
    counts = {n: max(2, 1 + max((v[n] for v in values.values()), default=1)) for n in names}
    return AttributeTable(path=p, format=fmt, columns=tuple(names), class_counts=counts, values=values)


@dataclass(frozen=True)
class JoinResult:
    records: list[TrackletRecord]
    schema: AttributeSchema
    matched: int
    unmatched: int  # records with a real identity (pid > 0) but no row
    unused_rows: int  # rows that matched no record


def join_attributes(records: list[TrackletRecord], table: AttributeTable) -> JoinResult:
    """Attach the schema columns of `table` to each record keyed by (pid, camid, tracklet_no).

    Distractor / junk tracklets (pid <= 0) have no attribute rows and keep `attributes=None`.
    """
    schema = table.schema
    keep = schema.column_names
    out, matched, unmatched, used = [], 0, 0, set()
    for r in records:
        key = (r.pid, r.camid, r.tracklet_no)
        row = table.values.get(key)
        if row is None:
            unmatched += r.pid > 0
            out.append(r)
            continue
        used.add(key)
        matched += 1
        out.append(replace(r, attributes={c: row[c] for c in keep if row.get(c, -1) >= 0}))
    if unmatched:
        log.warning("%d tracklet(s) with a real identity have no row in %s", unmatched, table.path)
    return JoinResult(out, schema, matched, unmatched, len(table.values) - len(used))
