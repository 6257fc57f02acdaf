"""Evaluation: distances, CMC / mAP / mINP, protocols, re-ranking, score normalisation, pairwise scoring, reports.

No Ray here: the Ray Data batch-inference driver is the job module `reid.batch_inference`, outside this package.
Evaluating trained runs without the trainer (discovery, `evaluate`, feature extraction, validation) is the
subpackage `reid.evaluation.run`. The HTML report (`reid.evaluation.report`) is imported on demand because it pulls
in matplotlib.
"""

from reid.evaluation.camera_pairs import CameraPairResult, camera_pair_breakdown
from reid.evaluation.distances import pairwise_distance
from reid.evaluation.features import flip_average, l2_normalize, pool_chunks, tracklet_features
from reid.evaluation.metrics import RankResult, evaluate_ranking
from reid.evaluation.pairwise import PairwiseScorer, pairwise_distance_matrix
from reid.evaluation.protocols import (
    EvalSplit,
    Protocol,
    TrialSummary,
    aggregate_trials,
    default_protocol,
    evaluate_split,
    get_protocol,
    protocol_names,
)
from reid.evaluation.rerank import rerank_distances, rerank_features
from reid.evaluation.score_norm import score_normalize

__all__ = [
    "CameraPairResult", "EvalSplit", "PairwiseScorer", "Protocol", "RankResult", "TrialSummary",
    "aggregate_trials", "camera_pair_breakdown", "default_protocol", "evaluate_ranking", "evaluate_split",
    "flip_average", "get_protocol", "l2_normalize", "pairwise_distance", "pairwise_distance_matrix",
    "pool_chunks", "protocol_names", "rerank_distances", "rerank_features", "score_normalize",
    "tracklet_features",
]
