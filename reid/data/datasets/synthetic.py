"""The synthetic dataset: `reid.data.synth.generate` (or `reid synth`) writes `<root>/manifest.parquet` directly,
so loading it is reading that manifest."""

from __future__ import annotations

from pathlib import Path

from reid.data.datasets.common import require_dir
from reid.data.records import Manifest, read_manifest
from reid.errors import ReidError

MANIFEST_NAME = "manifest.parquet"


def load_synthetic(root: str | Path) -> Manifest:
    root = require_dir(Path(root), "synthetic dataset root (create it with `reid synth --out DIR`)")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ReidError(f"synthetic dataset: expected the generator's manifest at {path} "
                        f"(create it with `reid synth --out {root}`)")
    return read_manifest(path, root=root)
