"""Evaluation protocols: which tracklets are queries and which form the gallery, selected by name.

A protocol reads manifest records (`pid`, `camid`, `role`) and returns index sets into them; the metrics then ignore
same-identity-same-camera pairs and junk (pid -1) for every protocol (see `metrics.py`). Protocols with trials
(iLIDS-VID, PRID-2011: 10 train/test splits) evaluate one trial's records at a time; `aggregate_trials` reports the
mean and standard deviation over the trials' results.

Names:
  mars-official   query = role query; gallery = role gallery + role query, minus junk (MARS: 11310 tracklets).
                  The official MARS code and AP3D / TCLNet / STE-NVAN; the ASA-Net paper's "mixing" setup.
  mars-torchreid  query = role query; gallery = role gallery minus junk (MARS: 9330; 140 queries have no match and
                  are skipped). torchreid / jiyanggao.
  synthetic       same index sets as mars-official (the synthetic generator writes the MARS roles).
  duke-video      query = role query; gallery = role gallery minus junk (the Duke gallery folder already holds a
                  copy of every query, which the same-id-same-camera rule ignores).
  ilidsvid        one trial: query = role query (camera-1 probes), gallery = role gallery (camera-2); 10 trials.
  prid2011        as ilidsvid (cam_a probes, cam_b gallery); 10 trials.
  generic         query = role query; gallery = role gallery minus junk.
  mars-two-camera ASTPN's reduction of MARS (Xu et al., ICCV 2017, sec. 4.2): per test identity, one probe tracklet
                  from one camera and one gallery tracklet from another, both cameras drawn at random (seed 0;
                  `mars-two-camera:<seed>` for another draw). See `reid.evaluation.two_camera`.
  cross-dataset   train on one dataset, test on another: the test dataset's default protocol, labelled
                  "<train> -> <test>"; needs `train_dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reid.data.records import TrackletRecord
from reid.errors import ReidError
from reid.evaluation.metrics import ArrayLike, RankResult, evaluate_ranking
from reid.registration import Registry


@dataclass(frozen=True)
class EvalSplit:
    """Index sets into the records a protocol was given; `label` names the protocol (and trial set-up)."""

    query: np.ndarray  # int64 [Nq]
    gallery: np.ndarray  # int64 [Ng]
    label: str
    notes: tuple[str, ...] = ()

    def ids(self, records: Sequence[TrackletRecord]) -> dict[str, np.ndarray]:
        """pids / camids of the query and gallery, as the metrics take them."""
        pid = np.array([r.pid for r in records], dtype=np.int64)
        cam = np.array([r.camid for r in records], dtype=np.int64)
        return {"q_pids": pid[self.query], "g_pids": pid[self.gallery],
                "q_camids": cam[self.query], "g_camids": cam[self.gallery]}


@dataclass(frozen=True)
class Protocol:
    """A named way of splitting test records into query and gallery.

    Attributes:
        name: registry name.
        gallery_roles: record roles that form the gallery (junk pid -1 is always removed).
        num_trials: how many train/test trials the dataset's protocol averages over (1 = a single split).
        camera_pairs: whether the protocol's reference code also reports the per-camera-pair breakdown.
        single_camera_sides: query and gallery must each come from one camera, and different ones.
    """

    name: str
    gallery_roles: tuple[str, ...]
    description: str
    num_trials: int = 1
    camera_pairs: bool = False
    single_camera_sides: bool = False
    forbid_query_pids: tuple[int, ...] = (-1,)
    label_suffix: str = field(default="", compare=False)

    def split(self, records: Sequence[TrackletRecord]) -> EvalSplit:
        role = np.array([r.role for r in records])
        pid = np.array([r.pid for r in records], dtype=np.int64)
        cam = np.array([r.camid for r in records], dtype=np.int64)
        query = np.nonzero(role == "query")[0]
        gallery = np.nonzero(np.isin(role, self.gallery_roles) & (pid != -1))[0]
        if query.size == 0 or gallery.size == 0:
            raise ReidError(f"protocol '{self.name}' needs records with role 'query' and role(s) "
                            f"{list(self.gallery_roles)}; got {query.size} queries and {gallery.size} gallery "
                            f"tracklets (roles present: {sorted(set(role.tolist()))})")
        bad = np.isin(pid[query], self.forbid_query_pids)
        if bad.any():
            raise ReidError(f"protocol '{self.name}': {int(bad.sum())} query tracklets have pid in "
                            f"{list(self.forbid_query_pids)} (junk / distractor), which cannot be queries")
        notes: list[str] = []
        if self.single_camera_sides:
            qc, gc = set(cam[query].tolist()), set(cam[gallery].tolist())
            if len(qc) != 1 or len(gc) != 1 or qc == gc:
                raise ReidError(f"protocol '{self.name}' expects the probes (role query) from one camera and the "
                                f"gallery (role gallery) from the other; got query cameras {sorted(qc)} and "
                                f"gallery cameras {sorted(gc)}")
            notes.append(f"probe camera {qc.pop()}, gallery camera {gc.pop()}")
        return EvalSplit(query=query, gallery=gallery, label=self.name + self.label_suffix, notes=tuple(notes))


_PROTOCOLS: Registry[Protocol] = Registry("protocol")  # the same registry implementation as the methods'


def register_protocol(protocol: Protocol) -> Protocol:
    return _PROTOCOLS.add(protocol.name, protocol)


register_protocol(Protocol("mars-official", ("gallery", "query"), "query tracklets stay in the gallery (11310)",
                           camera_pairs=True, forbid_query_pids=(-1, 0)))
register_protocol(Protocol("mars-torchreid", ("gallery",), "query and junk removed from the gallery (9330)",
                           camera_pairs=True, forbid_query_pids=(-1, 0)))
register_protocol(Protocol("synthetic", ("gallery", "query"), "as mars-official, on the synthetic dataset"))
register_protocol(Protocol("duke-video", ("gallery",), "the gallery folder already holds the queries"))
register_protocol(Protocol("ilidsvid", ("gallery",), "camera 1 probes vs camera 2 gallery, 10 trials",
                           num_trials=10, single_camera_sides=True))
register_protocol(Protocol("prid2011", ("gallery",), "cam_a probes vs cam_b gallery, 10 trials",
                           num_trials=10, single_camera_sides=True))
register_protocol(Protocol("generic", ("gallery",), "role query vs role gallery"))

DEFAULT_PROTOCOL: dict[str, str] = {
    "mars": "mars-official", "synthetic": "synthetic", "duke": "duke-video", "ilidsvid": "ilidsvid",
    "prid2011": "prid2011", "generic": "generic",
}


def protocol_names() -> list[str]:
    return sorted([*_PROTOCOLS.names(), "cross-dataset", "mars-two-camera"])


def default_protocol(dataset: str) -> str:
    if dataset not in DEFAULT_PROTOCOL:
        raise ReidError(f"no default protocol for dataset '{dataset}'; known datasets: {sorted(DEFAULT_PROTOCOL)}")
    return DEFAULT_PROTOCOL[dataset]


def get_protocol(name: str | None, *, dataset: str | None = None, train_dataset: str | None = None) -> Protocol:
    """Look a protocol up by name (None = the default of `dataset`).

    "cross-dataset" needs `dataset` (the test dataset, whose default protocol is used) and `train_dataset` (for the
    label only).
    """
    if name is None:
        if dataset is None:
            raise ReidError("no protocol given and no dataset to take the default from")
        name = default_protocol(dataset)
    if name == "cross-dataset":
        if dataset is None or train_dataset is None:
            raise ReidError("protocol 'cross-dataset' needs the test dataset and the train dataset "
                            "(e.g. train on ilidsvid, test on prid2011)")
        inner = get_protocol(default_protocol(dataset))
        return Protocol(**{**inner.__dict__, "label_suffix": f" (cross-dataset {train_dataset} -> {dataset})"})
    if name == "mars-two-camera" or name.startswith("mars-two-camera:"):
        from reid.evaluation.two_camera import two_camera_protocol

        return two_camera_protocol(name)
    if name not in _PROTOCOLS:
        raise ReidError(f"unknown protocol '{name}'; known protocols: {', '.join(protocol_names())}")
    return _PROTOCOLS.get(name)


def evaluate_split(distmat: ArrayLike, records: Sequence[TrackletRecord], split: EvalSplit,
                   **kwargs: object) -> RankResult:
    """Metrics of a [len(split.query), len(split.gallery)] distance matrix; kwargs go to `evaluate_ranking`."""
    return evaluate_ranking(distmat, **split.ids(records), **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrialSummary:
    """Mean and standard deviation (population, ddof=0) over the trials of a protocol.

    `cmc_mean` / `cmc_std` are over the shortest CMC among the trials; `mean` / `std` hold rank-k, mAP and mINP.
    """

    trials: tuple[RankResult, ...]
    mean: dict[str, float]
    std: dict[str, float]
    cmc_mean: np.ndarray
    cmc_std: np.ndarray

    @property
    def num_trials(self) -> int:
        return len(self.trials)


def aggregate_trials(results: Sequence[RankResult], ranks: tuple[int, ...] = (1, 5, 10, 20)) -> TrialSummary:
    """Aggregate per-trial results (each computed on that trial's own distance matrix)."""
    if not results:
        raise ReidError("aggregate_trials needs at least one trial result")
    keys = [f"rank{k}" for k in ranks] + ["mAP", "mINP"]
    table = np.array([[r.summary(ranks)[k] for k in keys] for r in results], dtype=np.float64)
    n = min(r.cmc.size for r in results)
    cmcs = np.stack([r.cmc[:n] for r in results])
    return TrialSummary(trials=tuple(results), mean=dict(zip(keys, table.mean(0).tolist(), strict=True)),
                        std=dict(zip(keys, table.std(0).tolist(), strict=True)),
                        cmc_mean=cmcs.mean(0), cmc_std=cmcs.std(0))
