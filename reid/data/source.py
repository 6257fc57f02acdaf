"""Where a run's dataset is: the manifest of `data.*`, generating the synthetic set on first use."""

from __future__ import annotations

from pathlib import Path

from reid import storage
from reid.config.schema import DataConfig
from reid.errors import ReidError


def manifest_path(data: DataConfig) -> Path | str:
    """The manifest of `data` (absolute: Ray Train workers and Ray Data actors do not run in the driver's working
    directory); the synthetic set (`data.dataset=synthetic`) is generated under `data.root` when it is missing
    (never in place of a `data.manifest` that names another file: that is an error).
    A URI (`data.root=s3://...` or `data.manifest=s3://...`) is returned as it is: the frames are then read from
    the bucket (reid.data.decode)."""
    remote = data.manifest if data.manifest else storage.join(data.root, "manifest.parquet")
    if storage.is_uri(remote):
        if not storage.is_file(remote):
            raise ReidError(f"no manifest at {remote}: copy a prepared dataset directory there "
                            f"(`reid prepare ... --out DIR`, then upload DIR as it is)")
        return remote
    path = Path(data.manifest) if data.manifest else Path(data.root) / "manifest.parquet"
    if path.is_file():
        return path.resolve()
    if data.attributes == "transferred":   # written by `reid transfer-attributes`, never generated here
        raise ReidError(f"no transferred-attribute manifest at {path}: write it with `reid transfer-attributes "
                        f"--source <attribute set> --target {data.root} --out <labels.csv> --out-manifest {path}` "
                        f"(docs/datasets.md), or set data.attributes=annotated data.manifest=null")
    if data.manifest and path != Path(data.root) / "manifest.parquet":  # named by the user: never replaced
        raise ReidError(f"no manifest at {path} (data.manifest): give the path of an existing manifest.parquet, "
                        f"or leave data.manifest unset to use {Path(data.root) / 'manifest.parquet'}")
    if data.dataset == "synthetic":
        from reid.data.synth import ensure_dataset

        return Path(ensure_dataset(Path(data.root), data.synth_preset,
                                   strength=data.synth_strength or None)).resolve()
    raise ReidError(f"no manifest at {path}: prepare the dataset first "
                    f"(`reid prepare {data.dataset} --root <dataset root> --out {data.root}`)")
