"""What only a CUDA device can show (run by `reid bench gpu`, skipped without CUDA by tests/conftest.py):

- every registered method x variant keeps its contract in bf16 autocast on CUDA (finite loss, a finite gradient for
  every trainable parameter) and embeds clips like its fp32 twin on the CPU (same weights, same batch);
- a training step with AMP on CUDA lowers the loss on a fixed batch;
- nvJPEG (`torchvision.io.decode_jpeg(..., device="cuda")`, the JPEG store's GPU path) decodes the store's bytes
  to the frames the CPU decoder gives, and `data.jpeg_decode=trainer` (reid.data.device_decode) turns a batch of
  bytes into the frames the decoding actors would have made;
- `train.channels_last` puts the conv weights in NHWC on CUDA without changing the features.

Every test marked `gpu` lives in this folder (tests/bench/test_bench_gpu.py checks it): `reid bench gpu` runs
`pytest -m gpu tests/gpu`, which imports nothing that a GPU node without the dev tools lacks.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from reid.config.schema import DataConfig
from reid.data.device_decode import decode_frames
from reid.data.jpeg_pack import encode_jpeg
from reid.data.jpeg_store import decode_jpegs
from reid.data.transforms import apply_augment, augment_row, sample_augment
from reid.training.step import StepTimes, memory_format, train_step
from tests.models.test_contract import CASES, build, check_contract

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(300)]

# bf16 keeps 8 bits of mantissa: features of a random-initialised model differ from fp32 by a relative L2 error of
# about 1e-2 (measured with CPU bf16 autocast on these tiny inputs, 2026-12-04: at most 0.0075 over every case; the
# baseline with its last conv's weights scaled by 1.1 is off by 0.022).
# The error is relative to the features themselves, not a cosine: ReLU features share a large positive mean, so a
# cosine stays near 1 even for features that are wrong.
MAX_RELATIVE_ERROR = 0.03


def to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def bf16_relative_error(method: str, variant: str | None, device: torch.device) -> torch.Tensor:
    """Per clip, ||bf16 features on `device` - fp32 features on the CPU|| / ||fp32 features|| (same weights)."""
    model, _, batch = build(method, variant)
    twin = copy.deepcopy(model).to(device).eval()
    model.eval()
    with torch.no_grad():
        ref = model.forward_features(batch).float()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            got = twin.forward_features(to(batch, device)).float().cpu()
    return (got - ref).norm(dim=1) / ref.norm(dim=1)


@pytest.fixture(scope="module")
def cuda() -> torch.device:
    return torch.device("cuda", 0)


@pytest.mark.parametrize("method, variant", CASES, ids=[f"{m}-{v or 'default'}" for m, v in CASES])
def test_every_method_keeps_its_contract_in_bf16_on_cuda(method, variant, cuda):
    model, objective, batch = build(method, variant)
    model, objective = model.to(cuda), objective.to(cuda)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        check_contract(model, objective, to(batch, cuda))
    err = bf16_relative_error(method, variant, cuda)
    assert err.max() <= MAX_RELATIVE_ERROR, f"bf16 CUDA features drift from fp32 CPU: relative error {err.tolist()}"


def test_an_amp_step_on_cuda_lowers_the_loss_on_a_fixed_batch(cuda):
    model, objective, batch = build("baseline", None)
    model, objective, batch = model.to(cuda), objective.to(cuda), to(batch, cuda)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    losses = [train_step(model, objective, batch, [opt], device=cuda, amp=True, grad_clip=None, scaler=None,
                         times=StepTimes(), where=f"step {i}")["loss"] for i in range(12)]
    assert losses[-1] < 0.5 * losses[0], losses


def smooth_frames(n: int, h: int = 256, w: int = 128) -> np.ndarray:
    """uint8 [n, h, w, 3]: gradients and blocks with mild noise (the kind of content JPEG keeps well)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        base = np.stack([(xx * 2 + i * 7) % 256, (yy + i * 13) % 256, ((xx + yy) // 2 + i * 29) % 256], axis=-1)
        base[h // 4:h // 2, w // 4:3 * w // 4] = rng.integers(0, 256, 3)
        out.append(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_nvjpeg_decodes_the_store_bytes_to_the_cpu_decoders_frames(cuda):
    from torchvision.io import decode_jpeg

    frames = smooth_frames(8)
    blobs = [encode_jpeg(f, quality=90) for f in frames]
    cpu = decode_jpegs(blobs).astype(np.float32)                               # [N, H, W, 3]
    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    gpu = torch.stack(decode_jpeg(data, device=cuda)).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
    assert gpu.shape == cpu.shape
    diff = np.abs(gpu - cpu)
    # IDCT and chroma upsampling differ between libjpeg-turbo and nvJPEG: a level or so on average, more at the sharp
    # colour edges of the block (measured on an H200, 2026-12-04: mean 1.23, 99th percentile 23 levels)
    assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 32, (diff.mean(), np.percentile(diff, 99))
    # and the frames are the picture, not the right shape of something else: far closer than to another frame
    assert diff.mean() < 0.1 * np.abs(gpu[1:] - cpu[:-1]).mean()


def test_trainer_decode_on_cuda_makes_the_actors_frames(cuda):
    """Two clips of 4 JPEG frames with their own crop / flip / erasing: nvJPEG + the torch geometry on CUDA vs the
    decoding actor's Pillow decode + apply_augment, and vs the same torch path on the CPU."""
    data = DataConfig(height=256, width=128, augment=dict(resize_height=288, resize_width=144, pad=10,
                                                          random_erasing=1.0))
    frames = smooth_frames(8)
    blobs = [encode_jpeg(f, quality=90) for f in frames]
    rng = np.random.default_rng(0)
    params = [sample_augment(rng, data, train=True) for _ in range(2)]
    params[0] = replace(params[0], flip=True)  # one clip flipped, whatever the draw
    actor = np.stack([apply_augment(decode_jpegs(blobs[4 * b:4 * b + 4]), p, chw=True) for b, p in enumerate(params)])
    flat = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    aug = np.stack([augment_row(p) for p in params])
    gpu = decode_frames(flat, offsets, aug, cuda)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.uint8 and tuple(gpu.shape) == actor.shape
    cpu = decode_frames(flat, offsets, aug, "cpu").numpy().astype(np.float32)
    gpu = gpu.cpu().numpy().astype(np.float32)
    # nvJPEG vs libjpeg-turbo as in the test above (mean 1.23, 99th percentile 23 on an H200), then the resize
    for ref in (actor.astype(np.float32), cpu):
        diff = np.abs(gpu - ref)
        assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 32, (diff.mean(), np.percentile(diff, 99))
    # a geometry error would show: the same clip unflipped is far further away
    assert np.abs(gpu[0] - cpu[0]).mean() < 0.2 * np.abs(gpu[0] - cpu[0][..., ::-1]).mean()


def test_channels_last_on_cuda_changes_the_layout_not_the_features(cuda):
    model, _, batch = build("baseline", None)
    model.eval()
    nchw = copy.deepcopy(model).to(cuda)
    nhwc = memory_format(copy.deepcopy(model), True, cuda).to(cuda)
    convs = [p for p in nhwc.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    with torch.no_grad():
        a, b = nchw.forward_features(to(batch, cuda)), nhwc.forward_features(to(batch, cuda))
    # fp32 convolutions on CUDA run in TF32 (PyTorch's default for cuDNN): two kernels agree to about 1e-3
    assert ((a - b).norm(dim=1) / a.norm(dim=1)).max() < 1e-2


def test_decoded_frames_are_augmented_on_cuda_as_the_actors_would_have(cuda):
    """`frames_hwc` + `frames_augment` cropped, flipped, erased and made channels-first on CUDA (`finish_frames`, in
    normalize_inputs): exactly apply_augment's channels-first clips."""
    from reid.data.device_decode import finish_frames

    d = DataConfig(height=64, width=32, augment={"pad": 6, "random_erasing": 1.0})
    rng = np.random.default_rng(4)
    clips = [rng.integers(0, 256, (4, 64, 32, 3), dtype=np.uint8) for _ in range(6)]
    params = [sample_augment(rng, d, train=True) for _ in clips]
    rows = torch.from_numpy(np.stack([augment_row(p) for p in params]))
    got = finish_frames(torch.from_numpy(np.stack(clips)).to(cuda), rows.to(cuda))
    assert got.device.type == "cuda"
    want = np.stack([apply_augment(c, p, chw=True) for c, p in zip(clips, params, strict=True)])
    assert {p.flip for p in params} == {False, True}
    np.testing.assert_array_equal(got.cpu().numpy(), want)
