"""The report of an evaluation (`reid report`, `reid demo`): one metrics table that names each model once."""

import re

import numpy as np

from reid.config.loader import build_config
from reid.data.records import TrackletRecord
from reid.evaluation.metrics import evaluate_ranking
from reid.evaluation.protocols import EvalSplit
from reid.evaluation.report import render_report
from reid.evaluation.run.evaluate import EvalOutcome
from reid.evaluation.run.reporting import UNTRAINED, build_report_data


def _outcome(rng: np.random.Generator, records: list[TrackletRecord], split: EvalSplit) -> EvalOutcome:
    d = rng.random((split.query.size, split.gallery.size)).astype(np.float32)
    r = evaluate_ranking(d, **split.ids(records))
    metrics = {"protocol": "synthetic", "valid_queries": r.num_valid_queries, "queries": split.query.size,
               "queries_without_match": r.num_queries_without_match, "mAP": 100 * r.mAP}
    return EvalOutcome(metrics=metrics, distmat=d, split=split, records=records)


def test_trained_and_untrained_are_one_table_each_named_once(tmp_path):
    rng = np.random.default_rng(0)
    records = [TrackletRecord(f"t{i}", pid=i % 6, camid=1 + i % 3, dataset="synthetic",
                              role="query" if i < 6 else "gallery", num_frames=4) for i in range(30)]
    split = EvalSplit(query=np.arange(6), gallery=np.arange(6, 30), label="synthetic")
    trained, untrained = _outcome(rng, records, split), _outcome(rng, records, split)
    cfg = build_config("baseline")
    data = build_report_data(cfg, trained, baseline=untrained)
    assert list(data.results) == ["trained baseline", UNTRAINED]
    np.testing.assert_allclose(data.results["trained baseline"].mAP, trained.metrics["mAP"] / 100, rtol=1e-6)
    np.testing.assert_allclose(data.results[UNTRAINED].mAP, untrained.metrics["mAP"] / 100, rtol=1e-6)
    html = render_report(data, tmp_path / "report.html").read_text()
    metrics = html.split("<h2>Metrics</h2>", 1)[1].split("<h2>", 1)[0]
    assert metrics.count("<table>") == 1, metrics
    cells = re.findall(r'<td class="l">([^<]*)</td>', metrics)
    assert cells == ["trained baseline", UNTRAINED]
