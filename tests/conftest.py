import os

import numpy as np
import pytest
import torch

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# CI runs `uv run pytest`: Ray 2.60 would then start every worker of the tests' own clusters through `uv run`
# (an environment re-sync per worker start); set before any test module imports ray (reid.ray_runtime explains)
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture(autouse=True)
def _seed_everything():
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True, scope="module")
def _no_ray_left_behind():
    """A test module that fails half-way (a timeout inside a Ray call) must not leave its Ray connection to the
    next module, whose own `ray.init` would then fail."""
    yield
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """The synthetic 'tiny' set, generated once per session and shared read-only (ops, deploy tests)."""
    from reid.data.synth import ensure_dataset

    root = tmp_path_factory.mktemp("synth") / "tiny"
    ensure_dataset(root, "tiny")
    return root
