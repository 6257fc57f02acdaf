"""The two-camera reduction of MARS used by ASTPN (Xu et al., ICCV 2017, section 4.2, table 3, figure 5(c)).

"As pedestrians were recorded by at least 2 cameras, we randomly chose 2 camera viewpoints of the same person out
of the ensemble. Then one of them was set as probe set and the other was set as gallery set. Here the case was
reduced to our previous experiences with iLIDS-VID and PRID-2011."

Built from the manifest's test records (roles query and gallery; distractors pid 0 and junk pid -1 left out): for
every identity seen by at least two cameras, two of its cameras are drawn at random, the first is the probe camera
and the second the gallery camera, and one tracklet of the identity is drawn from each. The probe set is one
tracklet per identity, the gallery one tracklet per identity, as on iLIDS-VID / PRID-2011; the paper does not say
which tracklet of a camera it took (MARS has several per camera), so it is drawn at random too. The draws are
deterministic: a generator seeded with (seed, pid) per identity, over the identity's cameras and tracklets in
sorted order, so an identity's choice does not depend on which other identities the manifest holds. Identities with
a single camera are left out (and counted in the split's notes). Protocol names: `mars-two-camera` (seed 0) and
`mars-two-camera:<seed>`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reid.data.records import TrackletRecord
from reid.errors import ReidError
from reid.evaluation.protocols import EvalSplit, Protocol

NAME = "mars-two-camera"


def two_camera_split(records: Sequence[TrackletRecord], seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(probe indices [N], gallery indices [N], identities skipped for having one camera) into `records`.

    probe[i] and gallery[i] belong to the same identity, from two different cameras; identities in ascending pid.
    """
    by_pid: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(records):
        if r.role in ("query", "gallery") and r.pid > 0:
            by_pid[r.pid][r.camid].append(i)
    probe, gallery, single = [], [], 0
    for pid in sorted(by_pid):
        cams = sorted(by_pid[pid])
        if len(cams) < 2:
            single += 1
            continue
        rng = np.random.default_rng([seed, pid])
        cam_p, cam_g = rng.choice(cams, size=2, replace=False).tolist()
        for cam, out in ((cam_p, probe), (cam_g, gallery)):
            tracklets = sorted(by_pid[pid][cam], key=lambda i: (records[i].tracklet_id, i))
            out.append(tracklets[int(rng.integers(len(tracklets)))])
    return np.asarray(probe, dtype=np.int64), np.asarray(gallery, dtype=np.int64), single


@dataclass(frozen=True)
class TwoCameraProtocol(Protocol):
    """Probe / gallery drawn per identity from two of its cameras (see the module docstring)."""

    seed: int = 0

    def split(self, records: Sequence[TrackletRecord]) -> EvalSplit:
        probe, gallery, single = two_camera_split(records, self.seed)
        if probe.size == 0:
            raise ReidError(f"protocol '{self.name}' found no test identity (role query / gallery, pid > 0) seen by "
                            f"two cameras in these {len(records)} records")
        notes = [f"{probe.size} identities, one probe and one gallery tracklet each from two random cameras "
                 f"(seed {self.seed})"]
        if single:
            notes.append(f"{single} identities seen by one camera left out")
        return EvalSplit(query=probe, gallery=gallery, label=self.name + self.label_suffix, notes=tuple(notes))


def two_camera_protocol(name: str) -> TwoCameraProtocol:
    """`mars-two-camera` (seed 0) or `mars-two-camera:<seed>` -> the protocol."""
    seed = 0
    if name != NAME:
        text = name.removeprefix(NAME + ":")
        if not text.isdigit():
            raise ReidError(f"protocol '{name}': write '{NAME}' or '{NAME}:<seed>' with a non-negative integer seed")
        seed = int(text)
    return TwoCameraProtocol(name=name, gallery_roles=("gallery",),
                             description="ASTPN's MARS reduction: per identity one probe and one gallery tracklet "
                                         "from two random cameras", seed=seed)
