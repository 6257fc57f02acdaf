"""Tracklet records and the Parquet manifest every dataset loader ends in.

A manifest is one Parquet file; its key-value metadata holds the dataset name, the attribute schema (JSON) and the
format version. Paths inside records are relative to the manifest's directory (the dataset root), so a prepared
dataset can be moved or mounted elsewhere. Paths that resolve outside the root are rejected (a manifest is data,
and must not make a reader open arbitrary files).

The root may be a URI (`s3://bucket/data/mars-jpeg`): a prepared dataset copied into a bucket as it is. Readers then
name files with `Manifest.locate` (a URI) instead of `Manifest.resolve` (a local path), see `reid.data.decode`.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reid import storage
from reid.data.attributes import AttributeSchema
from reid.errors import ReidError

MANIFEST_VERSION = "1"
ROLES = ("train", "query", "gallery", "unused")


class ManifestError(ReidError, ValueError):
    """A manifest that cannot be used as it is; the message says what is wrong."""


@dataclass(frozen=True)
class TrackletRecord:
    """One tracklet: a short video of one person seen by one camera.

    `pid` is the dataset's raw identity (MARS: 0 = distractor, -1 = junk); `camid` the raw camera number.
    The frames come either from `video` (one file, frames `frame_start .. frame_start + num_frames - 1`) or from
    `frames` (one image file per frame, in temporal order), or from a JPEG shard: row `shard_row` of the Parquet
    file `shard` holds the tracklet's frames as JPEG bytes (`reid.data.jpeg_store`). `attributes` maps column names
    of the manifest's attribute schema to class indices. `keypoints` is a .npy file of float32 [num_frames, 18, 3] (x, y, confidence)
    in frame pixel coordinates, COCO-18 / OpenPose joint order.
    """

    tracklet_id: str
    pid: int
    camid: int
    dataset: str
    role: str
    num_frames: int
    video: str | None = None
    frame_start: int = 0
    frames: tuple[str, ...] = ()
    attributes: dict[str, int] | None = None
    keypoints: str | None = None
    tracklet_no: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    shard: str | None = None
    shard_row: int = 0

    def with_role(self, role: str) -> TrackletRecord:
        return replace(self, role=role)


_SCHEMA = pa.schema([
    ("tracklet_id", pa.string()),
    ("pid", pa.int64()),
    ("camid", pa.int64()),
    ("dataset", pa.string()),
    ("role", pa.string()),
    ("num_frames", pa.int64()),
    ("video", pa.string()),
    ("frame_start", pa.int64()),
    ("frames", pa.list_(pa.string())),
    ("attributes", pa.map_(pa.string(), pa.int64())),
    ("keypoints", pa.string()),
    ("tracklet_no", pa.int64()),
    ("extra", pa.map_(pa.string(), pa.string())),
    ("shard", pa.string()),
    ("shard_row", pa.int64()),
])


def records_to_table(records: Sequence[TrackletRecord]) -> pa.Table:
    cols: dict[str, list] = {name: [] for name in _SCHEMA.names}
    for r in records:
        cols["tracklet_id"].append(r.tracklet_id)
        cols["pid"].append(int(r.pid))
        cols["camid"].append(int(r.camid))
        cols["dataset"].append(r.dataset)
        cols["role"].append(r.role)
        cols["num_frames"].append(int(r.num_frames))
        cols["video"].append(r.video)
        cols["frame_start"].append(int(r.frame_start))
        cols["frames"].append(list(r.frames))
        cols["attributes"].append(None if r.attributes is None else list(r.attributes.items()))
        cols["keypoints"].append(r.keypoints)
        cols["tracklet_no"].append(int(r.tracklet_no))
        cols["extra"].append(list(r.extra.items()))
        cols["shard"].append(r.shard)
        cols["shard_row"].append(int(r.shard_row))
    return pa.table(cols, schema=_SCHEMA)


def table_to_records(table: pa.Table) -> list[TrackletRecord]:
    missing = [n for n in ("tracklet_id", "pid", "camid", "role", "num_frames") if n not in table.column_names]
    if missing:
        raise ManifestError(f"manifest lacks required columns {missing}; expected {_SCHEMA.names}")
    rows = table.to_pylist()
    out = []
    for row in rows:
        attrs = row.get("attributes")
        out.append(TrackletRecord(
            tracklet_id=row["tracklet_id"], pid=int(row["pid"]), camid=int(row["camid"]),
            dataset=row.get("dataset") or "", role=row["role"], num_frames=int(row["num_frames"]),
            video=row.get("video"), frame_start=int(row.get("frame_start") or 0),
            frames=tuple(row.get("frames") or ()),
            attributes=None if attrs is None else {k: int(v) for k, v in attrs},
            keypoints=row.get("keypoints"), tracklet_no=int(row.get("tracklet_no") or 0),
            extra={k: v for k, v in (row.get("extra") or [])},
            shard=row.get("shard"), shard_row=int(row.get("shard_row") or 0),
        ))
    return out


@dataclass
class Manifest:
    """Records plus the dataset-level metadata, bound to a root directory (a local path, or a URI string)."""

    records: list[TrackletRecord]
    root: Path | str
    dataset: str
    attributes: AttributeSchema = field(default_factory=AttributeSchema)
    meta: dict[str, str] = field(default_factory=dict)
    # resolve()'s answers by (root, rel): Path.resolve walks every component with lstat, 0.2 ms a tracklet, 8 % of
    # a JPEG-store batch's time (2026-12-05)
    _resolved: dict[tuple[Path, str], Path] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = _as_root(self.root)

    @property
    def remote(self) -> bool:
        """The frames live under a URI (a bucket): read them with `locate`, not `resolve`."""
        return isinstance(self.root, str)

    def by_role(self, *roles: str) -> list[TrackletRecord]:
        return [r for r in self.records if r.role in roles]

    def resolve(self, rel: str) -> Path:
        """Absolute local path of a file named in a record; refuses paths that leave the root. For a root in a
        bucket use `locate` (this raises: the step asking needs a local or mounted copy of the dataset)."""
        if isinstance(self.root, str):
            raise ManifestError(f"the dataset root {self.root} is a URI: this step reads local files only; copy the "
                                f"dataset to a local or mounted directory and pass it as the root")
        key = (self.root, rel)
        if key not in self._resolved:
            root = self.root.resolve()
            path = (root / rel).resolve()
            if path != root and root not in path.parents:
                raise ManifestError(f"manifest path '{rel}' points outside the dataset root {root}")
            self._resolved[key] = path
        return self._resolved[key]

    def locate(self, rel: str) -> Path | str:
        """Where a file named in a record lives: `resolve(rel)` under a local root, `<root URI>/<rel>` under a URI
        root (normalised; refuses paths that leave the root)."""
        if not isinstance(self.root, str):
            return self.resolve(rel)
        norm = posixpath.normpath(rel)
        if norm.startswith(("/", "../")) or norm in ("..", "."):
            raise ManifestError(f"manifest path '{rel}' points outside the dataset root {self.root}")
        return storage.join(self.root, norm)

    def validate_paths(self) -> None:
        for r in self.records:
            named = [r.video, r.shard, r.keypoints, *r.frames[:1]]
            for rel in (n for n in named if n):
                self.locate(rel)
            if r.role not in ROLES:
                raise ManifestError(f"tracklet {r.tracklet_id}: role '{r.role}' is not one of {ROLES}")
            if r.num_frames <= 0:
                raise ManifestError(f"tracklet {r.tracklet_id}: num_frames must be positive")


def _as_root(root: str | Path) -> Path | str:
    """A dataset root as Manifest keeps it: a URI string (scheme kept), else a Path."""
    return str(root).rstrip("/") if storage.is_uri(root) else Path(root)


def _root_string(root: Path | str) -> str:
    return root if isinstance(root, str) else str(root.resolve())


def write_manifest(manifest: Manifest, path: str | Path | None = None) -> Path | str:
    """Write the manifest (default: `<root>/manifest.parquet`); `path` may be a URI (s3://...), returned as given.
    A manifest written away from its root records the root (`reid.root`), so readers find the frames."""
    if path is None and isinstance(manifest.root, str):
        path = storage.join(manifest.root, "manifest.parquet")
    if path is not None and storage.is_uri(path):
        return _write_uri_manifest(manifest, str(path))
    out = Path(path) if path is not None else manifest.root / "manifest.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = records_to_table(manifest.records)
    meta = _manifest_meta(manifest)
    if isinstance(manifest.root, str) or out.parent.resolve() != manifest.root.resolve():
        meta["reid.root"] = _root_string(manifest.root)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k: v.encode() for k, v in meta.items()}})
    pq.write_table(table, out)
    return out


def _manifest_meta(manifest: Manifest) -> dict[str, str]:
    return {"reid.version": MANIFEST_VERSION, "reid.dataset": manifest.dataset,
            "reid.attributes": manifest.attributes.to_json(), "reid.meta": json.dumps(manifest.meta)}


def _write_uri_manifest(manifest: Manifest, uri: str) -> str:
    table = records_to_table(manifest.records)
    meta = _manifest_meta(manifest)
    if _root_string(manifest.root) != storage.parent(uri):  # the frames stay where they are
        meta["reid.root"] = _root_string(manifest.root)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k: v.encode() for k, v in meta.items()}})
    fs, inner = storage.resolve(uri)
    pq.write_table(table, inner, filesystem=fs)
    return uri


def manifest_file(path: str | Path) -> Path | str:
    """The manifest file `path` names: itself, or the `manifest.parquet` of the directory it names (a URI not
    ending in .parquet is taken for a directory)."""
    if storage.is_uri(path):
        return str(path) if str(path).endswith(".parquet") else storage.join(path, "manifest.parquet")
    p = Path(path)
    return p / "manifest.parquet" if p.is_dir() else p


def read_manifest(path: str | Path, root: str | Path | None = None) -> Manifest:
    """Read a manifest (a local path or a URI: s3://bucket/data/manifest.parquet, or the directory holding it).
    `root` (a local path or a URI) defaults to the stored root, else the manifest's directory: a dataset directory
    copied into a bucket as it is reads its frames from the bucket."""
    uri = storage.is_uri(path)
    p = manifest_file(path)
    found = storage.is_file(p) if uri else Path(p).is_file()
    if not found:
        raise ManifestError(f"manifest not found: expected a Parquet file at {p} "
                            f"(create one with `reid prepare` or `reid synth`)")
    try:
        if uri:
            fs, inner = storage.resolve(p)
            table = pq.read_table(inner, filesystem=fs)
        else:
            table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises several types for truncated / non-Parquet files
        raise ManifestError(f"manifest {p} cannot be read as Parquet ({type(exc).__name__}: {exc}); "
                            f"is it truncated?") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"reid.")}
    stored_root = meta.get("reid.root")
    base = root if root is not None else stored_root if stored_root else storage.parent(p) if uri else Path(p).parent
    manifest = Manifest(
        records=table_to_records(table),
        root=_as_root(base),
        dataset=meta.get("reid.dataset", ""),
        attributes=AttributeSchema.from_json(meta.get("reid.attributes")),
        meta=json.loads(meta.get("reid.meta", "{}")),
    )
    manifest.validate_paths()
    return manifest


def relabel(records: Iterable[TrackletRecord]) -> dict[int, int]:
    """Map raw pids of training records to contiguous class labels 0..N-1 (sorted by raw pid)."""
    return {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
