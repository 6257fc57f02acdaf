"""Where a run reads and writes: local paths and URIs (s3://, gs://, hdfs://, file://) alike, through `pyarrow.fs`.

A location is a string: a local path, or a URI of a scheme pyarrow knows. The few operations a run needs (read and
write text or bytes, exists, list, copy a directory up or down) take one and pick the filesystem from it, so the
callers (run outputs, `--resume`, checkpoints to evaluate) have one code path. An S3-compatible server that is not
AWS (MinIO, Ceph, moto in the tests) is named once for every process by the standard `AWS_ENDPOINT_URL` variable,
which pyarrow reads (>= 15), so a URI never carries an endpoint and the same string works on every node; Ray Train's
own checkpoint uploads go through the same `pyarrow.fs.FileSystem.from_uri`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from reid.errors import ReidError


def is_uri(location: str | Path) -> bool:
    """A location with a scheme (`s3://bucket/runs`); a local path otherwise."""
    return "://" in str(location)


def local_only(location: str | Path, flag: str, command: str, writes: bool) -> Path:
    """`location` as a Path; a URI is a one-line error for the commands that read or write local folders only
    (`reid prepare`, `reid synth`, `reid pose`, an index's folder, a query's file): a dataset goes to a bucket once
    it is prepared."""
    if not is_uri(location):
        return Path(location)
    sync = {"s3": f"aws s3 sync DIR {location}", "gs": f"gcloud storage rsync -r DIR {location}"}
    how = "copy it to a local disk first"
    if writes:
        how = "write it to a local folder, then copy that folder up"
        scheme = str(location).split("://", 1)[0]
        how += f" (`{sync[scheme]}`)" if scheme in sync else ""
    raise ReidError(f"{flag} {location}: `reid {command}` works on local files and folders only; {how} "
                    "(docs/operations.md, \"a dataset in a bucket\")")


def resolve(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of a location and the path inside it (a local path made absolute)."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    try:
        return pafs.FileSystem.from_uri(str(location))
    except (OSError, ValueError, TypeError) as exc:  # unknown scheme, bad bucket name, no credentials
        raise ReidError(f"cannot open storage location {location}: {exc}") from None


def join(location: str | Path, *parts: str) -> str:
    """`location/part/...`, keeping a URI's scheme (Path would collapse `s3://` to `s3:/`)."""
    if not is_uri(location):
        return str(Path(location, *parts))
    return "/".join([str(location).rstrip("/"), *(p.strip("/") for p in parts)])


def as_location(location: str | Path) -> Path | str:
    """A local path as a `Path`, a URI as its string: what a function returns for a location its caller may join
    with `/` when local (`run_dir / "config.yaml"`) and must join with `join` when it is a URI."""
    return str(location) if is_uri(location) else Path(location)


def absolute(location: str | Path) -> str:
    """A URI as it is, a local path made absolute: what a file records to name a location for other processes."""
    return str(location) if is_uri(location) else str(Path(location).resolve())


def name(location: str | Path) -> str:
    """The last component of a location (`runs/a/` -> `a`)."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def parent(location: str | Path) -> str:
    """The location one level up, keeping a URI's scheme."""
    if not is_uri(location):
        return str(Path(location).resolve().parent)
    scheme, rest = str(location).rstrip("/").split("://", 1)
    return f"{scheme}://{rest.rsplit('/', 1)[0]}"


def _info(location: str | Path) -> pafs.FileInfo:
    fs, path = resolve(location)
    return fs.get_file_info(path)


def exists(location: str | Path) -> bool:
    return _info(location).type != pafs.FileType.NotFound


def is_file(location: str | Path) -> bool:
    return _info(location).type == pafs.FileType.File


def is_dir(location: str | Path) -> bool:
    """A directory; on object stores, a prefix that holds at least one object (S3 has no empty directories)."""
    return _info(location).type == pafs.FileType.Directory


def read_bytes(location: str | Path) -> bytes:
    fs, path = resolve(location)
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        raise ReidError(f"not found: {location}") from None


def open_input_file(location: str | Path) -> pafs.NativeFile:
    """A random-access reader of one file (seek + ranged reads: on S3 each read is one ranged GET, so a Parquet
    reader fetches the footer and the row groups it asks for, never the whole object)."""
    fs, path = resolve(location)
    try:
        return fs.open_input_file(path)
    except FileNotFoundError:
        raise ReidError(f"not found: {location}") from None


def _new_file_mode() -> int:
    """The mode open() gives a new file: 0o666 less the process's umask (read by setting it, so once, at import)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


NEW_FILE_MODE = _new_file_mode()


def _temporary_beside(target: Path) -> tuple[int, str]:
    """(fd, path) of a new temporary file in `target`'s directory, to be renamed onto it, with the mode a plain new
    file gets: mkstemp's 0o600 would leave run outputs (eval.json, summary.json, downloaded checkpoints) readable
    by their writer only, not by the other users or services of a shared volume."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.fchmod(fd, NEW_FILE_MODE)
    return fd, tmp


def download(location: str | Path, target: str | Path, chunk_bytes: int = 8 << 20) -> Path:
    """Copy one file to the local path `target` (streamed; written under a temporary name, then renamed, so a
    reader never sees half of it). Returns `target`."""
    fs, path = resolve(location)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary_beside(target)
    try:
        with os.fdopen(fd, "wb") as out, fs.open_input_stream(path) as stream:
            while chunk := stream.read(chunk_bytes):
                out.write(chunk)
        os.replace(tmp, target)
    except FileNotFoundError:
        os.unlink(tmp)
        raise ReidError(f"not found: {location}") from None
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def read_text(location: str | Path) -> str:
    return read_bytes(location).decode()


def write_bytes(location: str | Path, data: bytes) -> str:
    """Write a whole file, creating its parent directories. A local file is replaced atomically (a reader never sees
    half of it); an object store's PUT is atomic already. Returns the location."""
    fs, path = resolve(location)
    if not is_uri(location):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_beside(Path(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return str(location)
    with fs.open_output_stream(path) as stream:  # object stores create "parents" implicitly
        stream.write(data)
    return str(location)


def write_text(location: str | Path, text: str) -> str:
    return write_bytes(location, text.encode())


def check_writable(location: str | Path, what: str) -> None:
    """Before long work whose result goes to the file `location`: a ReidError in one line, naming `what` (e.g.
    "the report"), when that local file cannot be written (a folder there, a file where a parent folder must be, no
    permission, a read-only file system). Its parent folders are made, as `write_bytes` would; nothing else is left
    behind. A URI is not checked here (the upload's own error says what went wrong)."""
    if is_uri(location):
        return
    target = Path(location)
    if target.is_dir():
        raise ReidError(f"cannot write {what} to {target}: it is a folder; give the path of a file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_beside(target)
    except OSError as exc:
        in_the_way = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
        why = f"{in_the_way} is a file, not a folder" if in_the_way else exc.strerror or str(exc)
        raise ReidError(f"cannot write {what} to {target}: {why}") from None
    os.close(fd)
    os.unlink(tmp)


def list_dir(location: str | Path) -> list[str]:
    """Names of the direct children of a directory, sorted ([] when there is none)."""
    fs, path = resolve(location)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(i.base_name for i in infos)


def remove(location: str | Path) -> None:
    """Delete a file or a directory tree (every object under the prefix on object stores); nothing when absent."""
    fs, path = resolve(location)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)


def copy_dir(source: str | Path, destination: str | Path, chunk_bytes: int = 32 << 20) -> str:
    """Copy a directory tree between any two locations (local -> bucket, bucket -> local, ...). Returns destination.

    Files are read `chunk_bytes` at a time (one ranged GET each from an object store: pyarrow's default of 1 MiB made
    a 130 MB checkpoint 130 requests, and took 15-30 s from the tests' moto server instead of 2-4 s)."""
    src_fs, src = resolve(source)
    dst_fs, dst = resolve(destination)
    if src_fs.get_file_info(src).type != pafs.FileType.Directory:
        raise ReidError(f"not a directory: {source}")
    if not is_uri(destination):
        Path(dst).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs, chunk_size=chunk_bytes)
    return str(destination)


def local_dir(location: str | Path, cache: str | Path) -> Path:
    """A local directory with the contents of `location`: the path itself when local, else a copy downloaded into
    `cache` (the caller's, removed by it) - for what only reads local files (torch.load of a checkpoint)."""
    if not is_uri(location):
        return Path(location)
    into = Path(cache)
    target = into / name(location)
    copy_dir(location, target)
    return target
