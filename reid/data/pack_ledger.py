"""What `reid prepare --pack` has finished, so that running the same command again continues where it stopped.

Packing MARS is 1.19 M frames to encode (`--pack video`) or copy (`--pack jpeg`): a crash, Ctrl-C, a lost node or a
full disk must not send it back to the first tracklet.

`<out>/videos/pack-ledger.jsonl` (or `<out>/jpeg/...`): its first line holds the settings that decide the packed
bytes (the source folder, the encoder's settings); each further line is one finished unit, a tracklet's video or a
JPEG shard, with what the manifest needs of it and its unreadable frames. A unit's file is renamed into place
before its line is appended, so a line always names a complete file; a line cut short by a crash is ignored
and its unit packed again. A unit is reused only when its file is there and its line matches what would be packed
now (the same tracklets, with the same number of source frames). A rerun with other settings is refused in one line,
and so is a second pack into the same folder while one runs (`pack.lock`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reid.errors import ReidError

LEDGER = "pack-ledger.jsonl"
LOCK = "pack.lock"


@dataclass
class PackReport:
    """Unreadable frames (tracklet id -> their paths, relative to the dataset root; each replaced in the store by its
    tracklet's nearest readable frame), tracklets with no readable frame (left out of the manifest), and how many
    units (videos or shards) an earlier run had packed."""

    unreadable: dict[str, list[str]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    reused: int = 0
    units: int = 0

    def add(self, entry: dict[str, Any]) -> None:
        for tid, frames in entry.get("unreadable", {}).items():
            self.unreadable.setdefault(tid, []).extend(frames)
        self.dropped.extend(entry.get("dropped", []))

    def as_dict(self) -> dict[str, Any]:
        """For summary.json: every unreadable frame by tracklet, the dropped tracklets, the units reused."""
        return {"unreadable_frames": sum(len(v) for v in self.unreadable.values()),
                "unreadable": self.unreadable, "tracklets_dropped": sorted(self.dropped),
                "units": self.units, "units_reused": self.reused}

    def lines(self) -> list[str]:
        """What a user should read after packing (nothing when every frame was read)."""
        out = []
        if self.unreadable:
            n = sum(len(v) for v in self.unreadable.values())
            first = next(iter(self.unreadable.values()))[0]
            out.append(f"unreadable frames, each replaced by its tracklet's nearest readable frame: {n} in "
                       f"{len(self.unreadable)} tracklet(s) (e.g. {first}; summary.json lists them all)")
        if self.dropped:
            more = ", ..." if len(self.dropped) > 3 else ""
            out.append(f"tracklets with no readable frame, left out of the manifest: {len(self.dropped)} "
                       f"({', '.join(sorted(self.dropped)[:3])}{more})")
        return out


def settings_difference(before: dict[str, Any], now: dict[str, Any]) -> str:
    """'key: A there, B now' for every setting that differs ('' when none does); also `reid pose`'s resume."""
    return ", ".join(f"{k}: {before.get(k)!r} there, {v!r} now" for k, v in now.items() if before.get(k) != v)


class PackLedger:
    """The ledger of one store folder (`videos/` or `jpeg/`); `entry(key)` the line of a finished unit, if any."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.path = folder / LEDGER
        self._entries: dict[str, dict[str, Any]] = {}
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(folder)
        self._file: TextIO | None = None
        try:
            if self.path.is_file():
                self._read(settings)
            else:
                self.path.write_text(json.dumps({"settings": settings}) + "\n")
        except BaseException:
            self.close()
            raise

    def _read(self, settings: dict[str, Any]) -> None:
        try:
            text = self.path.read_text()
            lines = text.splitlines()
            before = json.loads(lines[0])["settings"] if lines else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReidError(f"{self.path} cannot be read ({exc}); remove it to pack {self.path.parent} again "
                            "from the start") from None
        if before is None:
            self.path.write_text(json.dumps({"settings": settings}) + "\n")
            return
        differ = settings_difference(before, settings)
        if differ:
            raise ReidError(f"{self.path.parent} holds a store packed with other settings ({differ}); choose another "
                            f"--out, or remove {self.path.parent} to pack it again")
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                self._entries[str(entry["key"])] = entry
            except (ValueError, KeyError, TypeError):  # cut short by a crash: that unit is packed again
                continue
        if not text.endswith("\n"):  # so that the next line does not continue the one cut short
            with open(self.path, "a") as f:
                f.write("\n")

    def entry(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def add(self, key: str, entry: dict[str, Any]) -> None:
        """Record a finished unit (its file already renamed into place)."""
        entry = {"key": key, **entry}
        if self._file is None:
            self._file = open(self.path, "a")  # noqa: SIM115 (kept open for the whole pack; closed by close())
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        self._entries[key] = entry

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None


def _lock(folder: Path) -> int | None:
    """An exclusive lock on `folder/pack.lock` for as long as this pack runs (released by the system if the process
    dies): a second `reid prepare --pack` into the same folder would write the same temporary files."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    fd = os.open(folder / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ReidError(f"another `reid prepare --pack` is writing {folder}; let it finish, or stop it first") from None
    return fd
