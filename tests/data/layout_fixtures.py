"""Tiny on-disk copies of the dataset layouts, written by the tests themselves (PIL images, scipy .mat files).

Images are 4x8 pixels whose red channel encodes the frame number, so tests can check frame order after decoding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat


def run_prepare(argv: Sequence[str]) -> int:
    """`reid prepare ARGV` without building the whole CLI (which imports every command module)."""
    import argparse

    from reid.commands import prepare as prepare_cmd

    parser = argparse.ArgumentParser()
    prepare_cmd.add_arguments(parser)
    return prepare_cmd.run(parser.parse_args(list(argv)))


def write_image(path: Path, value: int = 0, size: tuple[int, int] = (4, 8)) -> None:
    """size = (width, height); red channel = value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0] = value % 256
    arr[..., 1] = 90
    Image.fromarray(arr).save(path)


def mars_name(pid: int, cam: int, tno: int, frame: int) -> str:
    p = "00-1" if pid == -1 else f"{pid:04d}"
    return f"{p}C{cam}T{tno:04d}F{frame:03d}.jpg"


def make_mars(root: Path, train: Sequence[tuple[int, int, int, int]], test: Sequence[tuple[int, int, int, int]],
              query_rows: Sequence[int], write_frames: bool = True) -> dict[str, list[str]]:
    """Write a MARS tree. train / test: (pid, cam, tracklet number, frames); query_rows: 1-based test rows.

    Tracklets must be given in file-name order (as MARS' info files are). Returns the name lists.
    """
    info = root / "info"
    info.mkdir(parents=True, exist_ok=True)
    names_out = {}
    for split, tracks in (("train", train), ("test", test)):
        names, rows = [], []
        for pid, cam, tno, n in tracks:
            start = len(names) + 1
            names += [mars_name(pid, cam, tno, f + 1) for f in range(n)]
            rows.append([start, len(names), pid, cam])
        (info / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        savemat(info / f"tracks_{split}_info.mat", {f"track_{split}_info": np.asarray(rows, np.int32)})
        if write_frames:
            for k, name in enumerate(names):
                write_image(root / f"bbox_{split}" / name[:4] / name, k)
        names_out[split] = names
    savemat(info / "query_IDX.mat", {"query_IDX": np.asarray([list(query_rows)], np.uint16)})
    return names_out


def make_ilids(root: Path, persons: Sequence[int], frames: int = 3, trials: int = 2, seed: int = 0,
               padded: bool = True) -> np.ndarray:
    """iLIDS-VID tree with the given person numbers; returns ls_set (trials x persons, 1-based)."""
    seq = root / "i-LIDS-VID" / "sequences"
    for cam in ("cam1", "cam2"):
        for p in persons:
            for k, f in enumerate([7, 100, 12, 9][:frames] if not padded else range(300, 300 + frames)):
                num = f"{f:05d}" if padded else str(f)
                write_image(seq / cam / f"person{p:03d}" / f"{cam}_person{p:03d}_{num}.png", k)
    rng = np.random.default_rng(seed)
    ls_set = np.stack([rng.permutation(len(persons)) + 1 for _ in range(trials)]).astype(np.float64)
    split_dir = root / "train-test people splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    savemat(split_dir / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set})
    return ls_set


def make_prid(root: Path, cam_a: dict[int, int], cam_b: dict[int, int]) -> None:
    """PRID-2011 multi_shot tree: person number -> frame count, per camera."""
    for cam, persons in (("cam_a", cam_a), ("cam_b", cam_b)):
        for p, n in persons.items():
            for f in range(n):
                write_image(root / "prid_2011" / "multi_shot" / cam / f"person_{p:04d}" / f"{f + 1:04d}.png", f)


def write_prid_json(path: Path, trials: Sequence[tuple[Sequence[int], Sequence[int]]]) -> None:
    data = [{"train": [f"person_{p:04d}" for p in tr], "test": [f"person_{p:04d}" for p in te]}
            for tr, te in trials]
    path.write_text(json.dumps(data))


def duke_name(pid: int, cam: int, frame: int, index: int, underscores: bool = True) -> str:
    sep = "_" if underscores else ""
    return f"{pid:04d}{sep}C{cam}{sep}F{frame:04d}{sep}X{index:05d}.jpg"


def make_duke_tracklet(root: Path, split: str, pid: int, tno: int, cam: int, frames: Sequence[int],
                       underscores: bool = True) -> None:
    for k, f in enumerate(frames):
        write_image(root / split / f"{pid:04d}" / f"{tno:04d}" / duke_name(pid, cam, f, 1000 + f, underscores), k)
