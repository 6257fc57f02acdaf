"""`data.jpeg_decode=trainer`: the actors ship JPEG bytes, the trainer decodes and augments them (here on the CPU;
tests/gpu/test_cuda.py does it on CUDA) to the frames the actors would have made."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from reid.bench.toydata import write_toy_dataset
from reid.config import build_config
from reid.config.schema import DataConfig
from reid.data import pipeline
from reid.data.batching import BatchMaker, batch_frames, check_jpeg_decode
from reid.data.device_decode import JPEG_KEYS, decode_batch
from reid.data.inputs import normalize_inputs
from reid.data.jpeg_pack import pack_jpeg
from reid.data.plan import global_plan
from reid.data.records import Manifest, read_manifest, write_manifest
from reid.data.transforms import AUGMENT_COLUMNS
from reid.errors import ConfigError, ReidError
from reid.registry import get_method

# Measured on these toy frames (2026-12-04, CPU): the JPEG decoders agree exactly (Pillow's and torchvision's
# libjpeg-turbo), the geometry exactly; only the bilinear resize differs (Pillow's two 8-bit passes vs torch's one
# float pass), by at most 1 level, mean 0.16-0.19. Every flip inverted, every crop one row down or every erasing
# box left out is off by up to 212, 130, 124 levels, mean 39, 3.1, 9.5 (test_a_wrong_geometry_fails_the_comparison).
MAX_DIFF, MAX_MEAN_DIFF = 2, 0.5
GEOMETRIES = {  # height, width and augment; none of them lets the actors decode at a reduced DCT scale
    "stored-size": dict(height=64, width=32, augment=dict(pad=10, random_erasing=0.5)),
    "upscale-erase": dict(height=64, width=32, augment=dict(resize_height=80, resize_width=40, pad=6,
                                                            random_erasing=1.0)),
    "downscale": dict(height=40, width=20, augment=dict(resize_height=48, resize_width=24, pad=4)),
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    video = read_manifest(write_toy_dataset(root / "video", ids=4, cams=2, num_frames=9, size=(64, 32)))
    write_manifest(pack_jpeg(video, root / "jpeg", quality=90, tracklets_per_group=3, shard_size=5, progress=False))
    return video, read_manifest(root / "jpeg" / "manifest.parquet")


def cfg(geometry: str = "stored-size", **kw) -> DataConfig:
    return DataConfig(seq_len=4, ids_per_batch=2, tracklets_per_id=2, decode_timeout_s=None, **GEOMETRIES[geometry],
                      **kw)


def channels_first(batch: dict) -> dict:
    """An actor's training batch with its frames as `frames` [B, T, 3, H, W], finished as the worker does."""
    return {**{k: v for k, v in batch.items() if k not in ("frames_hwc", "frames_augment")}, "frames": batch_frames(batch)}


def both(manifest: Manifest, c: DataConfig, epochs: int = 1):
    """(actor batch with `frames`, trainer batch as shipped) for every plan row of `epochs` epochs."""
    actor = BatchMaker(manifest, c, {"frames"}, train=True)
    trainer = BatchMaker(manifest, c.model_copy(update={"jpeg_decode": "trainer"}), {"frames"}, train=True)
    try:
        for e in range(epochs):
            for row in global_plan(manifest.records, c, 3, "pk", e, 1):
                yield channels_first(actor(row)), trainer(row)
    finally:
        actor.close()
        trainer.close()


def pixel_diff(actor: dict, shipped: dict) -> np.ndarray:
    got = decode_batch(shipped, "cpu")["frames"]
    assert got.dtype == torch.uint8 and tuple(got.shape) == actor["frames"].shape
    return np.abs(got.numpy().astype(int) - actor["frames"].astype(int))


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_trainer_decoded_frames_equal_the_actors(stores, geometry):
    _, jpeg = stores
    diffs = []
    for a, b in both(jpeg, cfg(geometry), epochs=2):
        assert "frames" not in b and set(a) - {"frames"} == set(b) - set(JPEG_KEYS)
        for k in set(a) - {"frames"}:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        bsz, t = a["frames"].shape[:2]
        assert b["jpeg_bytes"].dtype == np.uint8 and b["jpeg_bytes"].ndim == 1
        assert b["jpeg_offsets"].dtype == np.int64 and b["jpeg_offsets"].shape == (bsz * t + 1,)
        assert b["jpeg_offsets"][0] == 0 and b["jpeg_offsets"][-1] == len(b["jpeg_bytes"])
        assert np.all(np.diff(b["jpeg_offsets"]) > 0)
        assert b["jpeg_augment"].dtype == np.int64 and b["jpeg_augment"].shape == (bsz, len(AUGMENT_COLUMNS))
        diffs.append(pixel_diff(a, b))
    d = np.concatenate([x.ravel() for x in diffs])
    assert d.max() <= MAX_DIFF and d.mean() <= MAX_MEAN_DIFF, (d.max(), d.mean())


@pytest.mark.parametrize("wrong", ["flip ignored", "crop one row down", "no erasing"])
def test_a_wrong_geometry_fails_the_comparison(stores, wrong):
    _, jpeg = stores
    col = {name: i for i, name in enumerate(AUGMENT_COLUMNS)}
    failed = False
    for a, b in both(jpeg, cfg("upscale-erase")):
        aug = b["jpeg_augment"].copy()
        if wrong == "flip ignored":
            aug[:, col["flip"]] = 0
        elif wrong == "crop one row down":
            aug[:, col["top"]] += 1
        else:
            aug[:, col["erase_h"]] = -1
        d = pixel_diff(a, {**b, "jpeg_augment": aug})
        failed |= bool(d.max() > MAX_DIFF or d.mean() > MAX_MEAN_DIFF)
    assert failed


def test_frames_the_actors_decode_at_a_reduced_dct_scale_differ_more(stores):
    """Stored 64x32 frames cropped from a 32x16 resize: the actors decode at 1/2 scale in the DCT domain
    (`Image.draft`), the trainer decodes in full and shrinks with an anti-aliased bilinear filter. Same frames,
    slightly different pixels (measured: mean 2.0 levels, 99th percentile 19, on these sharp-edged toy frames)."""
    _, jpeg = stores
    c = DataConfig(height=32, width=16, seq_len=4, ids_per_batch=2, tracklets_per_id=2, decode_timeout_s=None,
                   augment=dict(resize_height=32, resize_width=16, pad=2))
    d = np.concatenate([pixel_diff(a, b).ravel() for a, b in both(jpeg, c)])
    assert 0 < d.mean() < 3.0, d.mean()


def test_sampler_all_loop_pads_the_bytes_like_the_frames(stores):
    _, jpeg = stores
    for a, b in both(jpeg, cfg(train_sampler="all")):
        assert pixel_diff(a, b).max() <= MAX_DIFF


def test_unreadable_shard_is_replaced_as_when_the_actors_decode(stores):
    _, jpeg = stores
    records = list(jpeg.records)
    records[0] = replace(records[0], shard="jpeg/missing.parquet")
    m = Manifest(records, jpeg.root, jpeg.dataset, jpeg.attributes, jpeg.meta)
    c = cfg(max_errored_fraction=0.5)
    seen = 0
    for a, b in both(m, c, epochs=4):
        np.testing.assert_array_equal(a["index"], b["index"])
        assert 0 not in b["index"].tolist()
        seen += 1
    assert seen


def test_evaluation_makers_still_decode_on_the_cpu(stores):
    _, jpeg = stores
    c = cfg(jpeg_decode="trainer")
    maker = BatchMaker(jpeg, c, {"frames"}, train=False)
    out = maker(global_plan(jpeg.records, c, 3, "pk", 0, 1)[0])
    assert out["frames"].shape == (4, 4, 3, 64, 32) and "jpeg_bytes" not in out


def test_normalize_inputs_decodes_a_bytes_batch(stores):
    _, jpeg = stores
    a, b = next(both(jpeg, cfg()))
    spec = get_method("baseline")
    got = normalize_inputs({k: torch.from_numpy(v) for k, v in b.items()}, spec, torch.device("cpu"))
    want = normalize_inputs({k: torch.from_numpy(v) for k, v in a.items()}, spec, torch.device("cpu"))
    assert set(got) == set(want) and got["frames"].dtype == torch.float32
    assert torch.allclose(got["frames"], want["frames"], atol=MAX_DIFF / 255 / 0.224)


def test_refused_for_inputs_decoded_on_the_cpu():
    for method in ("astpn", "fcnta", "posetap"):
        with pytest.raises(ConfigError, match="data.jpeg_decode=trainer"):
            build_config(method, [], ["data.jpeg_decode=trainer"])
    with pytest.raises(ReidError, match=r"\['keypoints'\]"):
        check_jpeg_decode(DataConfig(jpeg_decode="trainer"), {"frames", "keypoints"})
    assert build_config("baseline", [], ["data.jpeg_decode=trainer"]).data.jpeg_decode == "trainer"


def test_refused_for_a_manifest_that_is_not_a_jpeg_store(stores, tmp_path):
    video, _ = stores
    c = cfg(jpeg_decode="trainer")
    with pytest.raises(ReidError, match="needs a JPEG-store manifest"):
        BatchMaker(video, c, {"frames"}, train=True)
    with pytest.raises(ReidError, match="needs a JPEG-store manifest"):  # before any Ray call
        pipeline.build_rank_dataset(video.root / "manifest.parquet", c, 0, {"frames"}, "pk", rank=0, world_size=1,
                                    epochs=range(1), ledger_name="unused")


def test_a_torchvision_without_decode_jpeg_is_refused_in_one_line_when_the_fit_starts(monkeypatch):
    """torchvision deprecated its image decoders in 0.29 (TorchCodec supersedes them); one that dropped them."""
    from torchvision import io

    monkeypatch.delattr(io, "decode_jpeg")
    with pytest.raises(ReidError, match=r"no longer has: install the torchvision of uv.lock .*data.jpeg_decode=actor"):
        check_jpeg_decode(DataConfig(jpeg_decode="trainer"), {"frames"})
    with pytest.raises(ReidError, match="no longer has"):  # the trainer's own decode says the same
        decode_batch({"jpeg_bytes": np.zeros(4, np.uint8), "jpeg_offsets": np.array([0, 4]),
                      "jpeg_augment": np.zeros((1, len(AUGMENT_COLUMNS)), np.int64)}, "cpu")
    check_jpeg_decode(DataConfig(jpeg_decode="actor"), {"frames"})  # the default never needs it


def test_the_decoding_actor_ships_bytes_and_no_frames(stores, fake_ledger):
    """`_DecodeBatches.__call__` as the pool runs it, with the ledger actor faked (no Ray cluster)."""
    _, jpeg = stores
    c = cfg(jpeg_decode="trainer")
    actor = pipeline._DecodeBatches(str(jpeg.root / "manifest.parquet"), c.model_dump(), 3, ["frames"], "pk", 1,
                                    "ledger", None)
    # a task of two rows yields two batches, in the rows' order, each one row
    outs = list(actor({"epoch": np.array([0, 0]), "slot": np.array([1, 0])}))
    assert [int(o["batch_index"][0]) for o in outs] == [1, 0] and all(len(o["pid"]) == 1 for o in outs)
    out = outs[0]
    assert "frames" not in out and set(JPEG_KEYS) <= set(out)
    row = {k: v[0] for k, v in out.items()}  # one row = one batch, as RankStream squeezes it
    want = channels_first(BatchMaker(jpeg, cfg(), {"frames"}, train=True)(global_plan(jpeg.records, c, 3, "pk", 0, 1)[1]))
    assert int(row["batch_index"]) == 1 and int(row["epoch"]) == 0
    np.testing.assert_array_equal(row["index"], want["index"])
    assert pixel_diff(want, row).max() <= MAX_DIFF


def test_a_trainer_decoded_stream_keeps_the_bytes_in_host_memory(monkeypatch):
    """Ray Train moves iterated batches to the worker's device ("auto"); JPEG bytes must stay on the host, where
    decode_jpeg reads them, instead of a round trip through the GPU."""
    asked: list[str] = []

    class _Dataset:
        def iter_torch_batches(self, *, batch_size, prefetch_batches, device):
            asked.append(device)
            return iter(())

    monkeypatch.setattr(pipeline, "batches_per_epoch", lambda *a, **k: 2)
    monkeypatch.setattr(pipeline, "build_rank_dataset", lambda *a, **k: _Dataset())
    for mode, want in (("trainer", "cpu"), ("actor", "auto")):
        data = DataConfig(jpeg_decode=mode)
        pipeline.open_rank_stream("m.parquet", data, 0, ["frames"], "pk", rank=0, world_size=1, start_epoch=0,
                                  end_epoch=1, ledger_name="ledger")
        assert asked[-1] == want, mode


def _damage(shipped: dict, frames: list[int]) -> dict:
    """The batch with frames `frames` cut to their first 200 bytes (the JPEG header survives: the actors' magic-byte
    check passes, the decode fails)."""
    offsets = shipped["jpeg_offsets"]
    pieces = [shipped["jpeg_bytes"][offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    pieces = [p[:200] if i in frames else p for i, p in enumerate(pieces)]
    new_offsets = np.zeros_like(offsets)
    np.cumsum([len(p) for p in pieces], out=new_offsets[1:])
    return {**shipped, "jpeg_bytes": np.concatenate(pieces), "jpeg_offsets": new_offsets}


def test_a_damaged_jpeg_is_replaced_by_the_nearest_frame_of_its_clip(stores, caplog):
    _, jpeg = stores
    a, b = next(both(jpeg, cfg()))
    t = a["frames"].shape[1]
    damaged = _damage(b, [1, t + 2])  # clip 0 frame 1, clip 1 frame 2
    with caplog.at_level("WARNING", logger="reid.data.device_decode"):
        got = decode_batch(damaged, "cpu")["frames"]
    assert "2 of" in caplog.text and "failed to decode" in caplog.text
    good = decode_batch(b, "cpu")["frames"]
    assert torch.equal(got[0, 1], good[0, 0])  # the earlier neighbour first
    assert torch.equal(got[1, 2], good[1, 1])
    keep = [(c, f) for c in range(got.shape[0]) for f in range(t) if (c, f) not in {(0, 1), (1, 2)}]
    assert all(torch.equal(got[c, f], good[c, f]) for c, f in keep)


def test_a_clip_none_of_whose_frames_decodes_is_an_error(stores):
    _, jpeg = stores
    a, b = next(both(jpeg, cfg()))
    t = a["frames"].shape[1]
    with pytest.raises(ReidError, match=f"none of the {t} JPEG frames of clip 1"):
        decode_batch(_damage(b, list(range(t, 2 * t))), "cpu")
