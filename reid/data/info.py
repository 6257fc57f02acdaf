"""What a model is built for (`reid.spec.DataInfo`), read off a manifest and the run's `data.*` section."""

from __future__ import annotations

from reid.config.schema import DataConfig
from reid.data.records import Manifest, relabel
from reid.data.validation import with_validation_split
from reid.spec import DataInfo


def data_info(manifest: Manifest, data: DataConfig) -> DataInfo:
    """The model's data facts; the classes are the training identities left after the validation split is held
    out (reid.data.validation), the same whether `manifest` is the dataset's or the run's derived one (whose
    held-out identities already have role `val`)."""
    train = with_validation_split(manifest, data.val_identities).by_role("train")
    return DataInfo(num_classes=len(relabel(train)), attributes=manifest.attributes,
                    height=data.height, width=data.width)
