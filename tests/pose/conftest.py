import numpy as np
import pytest
from PIL import Image

from reid.data.records import Manifest, TrackletRecord, write_manifest


@pytest.fixture
def frame_dataset(tmp_path):
    """A dataset root with two tracklets of 64x32 PNG frames (3 and 2 frames) and its manifest."""
    rng = np.random.default_rng(0)
    records = []
    for k, n in enumerate((3, 2)):
        frames = []
        for i in range(n):
            rel = f"frames/t{k}/{i:04d}.png"
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(tmp_path / rel)
            frames.append(rel)
        records.append(TrackletRecord(tracklet_id=f"c1/t{k}", pid=k + 1, camid=1, dataset="toy", role="train",
                                      num_frames=n, frames=tuple(frames)))
    path = write_manifest(Manifest(records=records, root=tmp_path, dataset="toy"))
    return tmp_path, path
