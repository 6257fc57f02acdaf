"""Security defaults that need no cluster: no pickle code execution from checkpoints, manifests confined to the
dataset root, clear errors for damaged manifests."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from reid.data.records import ManifestError, read_manifest, write_manifest
from reid.errors import ReidError
from reid.training.checkpoint import STATE_FILE, init_weights_from, load_state


class _TouchOnUnpickle:
    """A pickled object whose unpickling would create `path`: proof of code execution if the file appears."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _evil_checkpoint(directory: Path, marker: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    state = {"model": {"w": torch.zeros(2)}, "next_epoch": 1, "payload": _TouchOnUnpickle(marker)}
    torch.save(state, directory / STATE_FILE)
    return directory


def test_checkpoint_with_a_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    ckpt = _evil_checkpoint(tmp_path / "ckpt", marker)
    # the same bytes do run code under a plain pickle load: the file really carries a payload
    torch.load(ckpt / STATE_FILE, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ReidError, match=r"refusing to unpickle"):
        load_state(ckpt)
    with pytest.raises(ReidError, match=r"refusing to unpickle"):
        init_weights_from(torch.nn.Linear(2, 2), ckpt)  # the two-stage recipe's loader goes through load_state
    assert not marker.exists()


def test_plain_checkpoint_still_loads(tmp_path):
    (tmp_path / "ok").mkdir()
    torch.save({"model": {"w": torch.ones(2)}, "next_epoch": 3, "config_yaml": "a: 1\n"}, tmp_path / "ok" / STATE_FILE)
    state = load_state(tmp_path / "ok")
    assert state["next_epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))


def test_backbone_weight_files_are_loaded_weights_only(tmp_path):
    from reid.models.backbones import load_imagenet_weights

    marker = tmp_path / "code-ran"
    path = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _TouchOnUnpickle(marker)}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_imagenet_weights(torch.nn.Linear(1, 1), 18, str(path))
    assert not marker.exists()


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory):
    from reid.data.synth import ensure_dataset

    root = tmp_path_factory.mktemp("security") / "tiny"
    ensure_dataset(root, "tiny")
    return root


def test_manifest_paths_outside_the_dataset_root_are_rejected(small_manifest, tmp_path):
    m = read_manifest(small_manifest)
    secret = tmp_path / "outside.mp4"
    secret.write_bytes(b"not yours")
    for bad in ("../outside.mp4", str(secret), "videos/../../outside.mp4"):
        with pytest.raises(ManifestError, match="points outside the dataset root"):
            m.resolve(bad)
    rec = m.records[0]
    evil = type(m)(records=[rec.__class__(**{**rec.__dict__, "video": "../outside.mp4"}), *m.records[1:]],
                   root=m.root, dataset=m.dataset, attributes=m.attributes, meta=m.meta)
    out = write_manifest(evil, tmp_path / "evil.parquet")
    with pytest.raises(ManifestError, match="points outside the dataset root"):
        read_manifest(out, root=m.root)  # validated on read, before any file is opened
    os.symlink(secret, m.root / "videos" / "link.mp4")
    with pytest.raises(ManifestError, match="points outside the dataset root"):
        m.resolve("videos/link.mp4")  # a symlink leaving the root is resolved first, then refused


def test_truncated_manifest_is_a_clear_error(small_manifest, tmp_path):
    src = small_manifest / "manifest.parquet"
    cut = tmp_path / "cut" / "manifest.parquet"
    cut.parent.mkdir()
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ManifestError, match="is it truncated"):
        read_manifest(cut)
    shutil.copy(src, cut)
    cut.write_bytes(pickle.dumps({"not": "parquet"}))
    with pytest.raises(ManifestError, match="cannot be read as Parquet"):
        read_manifest(cut)


def test_resolved_paths_are_remembered_per_root(small_manifest, tmp_path):
    m = read_manifest(small_manifest)
    rel = m.records[0].video
    first = m.resolve(rel)
    assert m.resolve(rel) == first and first.is_file()
    other = tmp_path / "copy"
    other.mkdir()
    m.root = other  # a manifest bound to another root answers under that root, not from the memo
    assert m.resolve(rel) == (other / rel).resolve()
