"""Dataset layouts -> `Manifest`. One module per layout; `load_dataset(name, root, **options)` is the entry point.

Options per dataset (all keyword, all optional):
    mars       protocol="official"|"torchreid", check_frames=True, attributes=CSV
    ilidsvid   trial=0..9, splits=PATH (train_test_splits_ilidsvid.mat)
    prid2011   trial=0..9, protocol="standard"|"legacy", splits=PATH (.json or .mat), seed=0 (legacy split)
    duke       attributes=CSV
    generic    csv=PATH (default <root>/tracklets.csv if present, else the folder layout)
    synthetic  (none: reads <root>/manifest.parquet)
An option a dataset does not take, or an unknown dataset name, is a ReidError listing what is accepted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from reid.data.datasets.attributes_csv import join_attributes, read_attribute_csv
from reid.data.datasets.duke import load_duke
from reid.data.datasets.generic import load_generic
from reid.data.datasets.ilidsvid import load_ilidsvid
from reid.data.datasets.mars import load_mars, mars_protocol_sets
from reid.data.datasets.prid2011 import load_prid2011
from reid.data.datasets.synthetic import load_synthetic
from reid.data.records import Manifest
from reid.errors import ReidError

LOADERS: dict[str, Callable[..., Manifest]] = {
    "mars": load_mars,
    "ilidsvid": load_ilidsvid,
    "prid2011": load_prid2011,
    "duke": load_duke,
    "generic": load_generic,
    "synthetic": load_synthetic,
}
# datasets whose records can take the MARS / Duke attribute CSVs (key: raw pid, raw camera, tracklet number)
ATTRIBUTE_DATASETS = ("mars", "duke")


def dataset_options(name: str) -> list[str]:
    params = list(inspect.signature(LOADERS[name]).parameters)[1:]
    return params + (["attributes"] if name in ATTRIBUTE_DATASETS else [])


def load_dataset(name: str, root: str | Path, **options: object) -> Manifest:
    """Parse the dataset `name` found at `root` into a Manifest. Options that are None are ignored."""
    if name not in LOADERS:
        raise ReidError(f"unknown dataset '{name}'; known datasets: {', '.join(LOADERS)}")
    options = {k: v for k, v in options.items() if v is not None}
    accepted = dataset_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ReidError(f"dataset '{name}' does not take option(s) {unknown}; it accepts {accepted or 'none'}")
    attributes = options.pop("attributes", None)
    manifest = LOADERS[name](root, **options)
    if attributes is not None:
        manifest = with_attributes(manifest, Path(str(attributes)))
    return manifest


def with_attributes(manifest: Manifest, csv_path: Path) -> Manifest:
    """Join an attribute CSV onto the manifest's records and set its attribute schema."""
    table = read_attribute_csv(csv_path)
    joined = join_attributes(manifest.records, table)
    if joined.matched == 0:
        raise ReidError(f"no tracklet of '{manifest.dataset}' matches a row of {csv_path} by (pid, camera, "
                        f"tracklet number); is it the attribute file of this dataset?")
    meta = {**manifest.meta, "attributes_csv": str(csv_path), "attributes_matched": str(joined.matched),
            "attributes_unmatched": str(joined.unmatched)}
    return Manifest(records=joined.records, root=manifest.root, dataset=manifest.dataset, attributes=joined.schema,
                    meta=meta)


__all__ = ["LOADERS", "dataset_options", "load_dataset", "mars_protocol_sets", "with_attributes"]
