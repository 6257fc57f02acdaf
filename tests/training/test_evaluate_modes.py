"""`evaluate` beyond the plain case: the query-gallery pairwise scoring of ASTPN. (Checkpoints of another dataset,
whose ID classifier has another size: tests/models/test_factory.py.)"""

from __future__ import annotations

import pytest
import torch

from reid.batch_inference import extract_features_ray
from reid.config import build_config
from reid.errors import ReidError
from reid.evaluation.run.evaluate import evaluate


def _astpn_cfg(tiny_data, tmp_path, *extra: str):
    return build_config("astpn", ["astpn-synthetic"], [f"data.root={tiny_data}", f"ray.storage_path={tmp_path}",
                                                       "ray.num_workers=0", "data.seq_len=4",
                                                       "data.test_chunk_len=4", "model.hidden=16", *extra])


@pytest.mark.timeout(600)
def test_pairwise_evaluation_runs_and_equals_self_paired_without_attention(tiny_data, tmp_path):
    """Mean temporal pooling makes each sequence's vector independent of its partner: the pairwise path must then
    give the single-pass ranking; with attentive pooling it is a different (query-dependent) ranking."""
    mean = ["model.temporal_pooling=mean"]
    single = evaluate(_astpn_cfg(tiny_data, tmp_path, *mean), checkpoint=None)
    paired = evaluate(_astpn_cfg(tiny_data, tmp_path, *mean, "eval.pairwise=true"), checkpoint=None)
    assert single.distmat.shape == paired.distmat.shape
    assert torch.allclose(torch.as_tensor(single.distmat), torch.as_tensor(paired.distmat), atol=1e-3)  # sqrt near 0
    assert single.metrics["mAP"] == pytest.approx(paired.metrics["mAP"], abs=1e-6)

    attentive = evaluate(_astpn_cfg(tiny_data, tmp_path, "eval.pairwise=true"), checkpoint=None)
    assert attentive.distmat.shape == single.distmat.shape and attentive.metrics["valid_queries"] > 0


def test_pairwise_with_the_ray_backend_is_a_clear_error(tiny_data, tmp_path):
    with pytest.raises(ReidError, match="--backend local"):
        evaluate(_astpn_cfg(tiny_data, tmp_path, "eval.pairwise=true"), checkpoint=None,
                 extract=extract_features_ray)
