"""Epoch plans: which tracklets form each training batch, as a pure function of (records, seed, epoch).

A plan is a list of `PlanRow`s, one per training batch. The global number of batches is always a multiple of the
world size, because Ray Train splits the dataset with `streaming_split(world_size, equal=True)`, which would cut a
left-over batch in half; rank r owns rows r::world_size. Nothing here depends on the process, the clock or the
global RNG, so a resumed run rebuilds exactly the plan of the epoch it resumes in.

- `pk_plan`: P identities x K tracklets (RandomIdentitySampler, Hermans et al. 2017). Identities are drawn from a
  stream of random permutations, so with `batches_per_epoch=None` every identity appears about once per epoch;
  identities with fewer than K tracklets are sampled with replacement.
- `pair_plan`: siamese pairs (fcnta, astpn). Positive pairs take two tracklets of one identity from two DIFFERENT
  cameras (RCN's camera-A vs camera-B pairs); negative pairs take two identities, with `pair_cameras="cross"`
  (`data.pair_cameras`, the default) also from two different cameras: side A's tracklet from one camera, side B's
  from another, as astpn section 4.1.1 ("a sub-sequence from camera 1 of person A and a sub-sequence from camera 2
  of person B"); `"any"` draws the negative's two tracklets regardless of camera. A batch of N pairs holds N // 2
  positives and N // 2 negatives; an odd N alternates the extra pair between positive and negative from step to
  step on every rank, so N = 1 reproduces the papers' one-pair-per-step alternation.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from reid.config.schema import DataConfig
from reid.data.records import TrackletRecord
from reid.errors import ReidError
from reid.spec import BatchingKind as Batching  # the literal lives with MethodSpec.batching

PairCameras = Literal["cross", "any"]
_PLAN_TAG = 0x504C414E  # "PLAN": keeps plan randomness apart from per-row randomness


@dataclass(frozen=True)
class PlanRow:
    """One training batch.

    Attributes:
        epoch, batch: the epoch and the GLOBAL batch index (0 .. num_batches - 1).
        indices: record indices (positions in the manifest's record list), B of them. For pairs, the first N are
            side A and the next N side B.
        seed: per-row seed derived from (seed, epoch, batch); all frame sampling and augmentation of this batch
            draw from generators seeded with it.
        pair_same: pairs only: 1.0 where pair i is a positive (same identity) pair, else 0.0; length N.
    """

    epoch: int
    batch: int
    indices: tuple[int, ...]
    seed: int
    pair_same: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "indices": list(self.indices), "seed": self.seed,
                "pair_same": None if self.pair_same is None else list(self.pair_same)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlanRow:
        ps = d.get("pair_same")
        return cls(int(d["epoch"]), int(d["batch"]), tuple(int(i) for i in d["indices"]), int(d["seed"]),
                   None if ps is None else tuple(float(x) for x in ps))


def _u64(x: int) -> int:
    return int(x) % (1 << 64)  # SeedSequence takes non-negative entropy only


def row_seed(seed: int, epoch: int, batch: int) -> int:
    """Per-row seed, a pure function of (seed, epoch, batch); fits in int64."""
    state = np.random.SeedSequence([_u64(seed), _u64(epoch), _u64(batch)]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def _plan_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_u64(seed), _u64(epoch), _PLAN_TAG]))


def _by_pid(records: Sequence[TrackletRecord], role: str) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.role == role:
            groups[r.pid].append(i)
    if not groups:
        raise ReidError(f"the manifest has no tracklets with role '{role}'; a training plan needs some")
    return dict(sorted(groups.items()))


def _round_up(n: int, multiple: int) -> int:
    return max(1, math.ceil(n / multiple)) * multiple


def _check_world(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ReidError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")


def num_pk_batches(num_ids: int, ids_per_batch: int, batches_per_epoch: int | None, world_size: int) -> int:
    """Global batches per epoch: `batches_per_epoch` or ceil(#ids / P), rounded up to a multiple of world_size."""
    wanted = batches_per_epoch if batches_per_epoch is not None else math.ceil(num_ids / ids_per_batch)
    return _round_up(wanted, world_size)


def pk_plan(records: Sequence[TrackletRecord], *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
            ids_per_batch: int, tracklets_per_id: int, batches_per_epoch: int | None = None,
            role: str = "train") -> list[PlanRow]:
    """The rows of rank `rank`: batches r::world_size of the epoch's global P x K plan.

    Every row holds exactly P distinct identities, each with K record indices (grouped: slots k*K .. k*K+K-1
    belong to the k-th identity).
    """
    _check_world(rank, world_size)
    rows = _pk_global(records, seed, epoch, world_size, ids_per_batch, tracklets_per_id, batches_per_epoch, role)
    return rows[rank::world_size]


def _pk_global(records: Sequence[TrackletRecord], seed: int, epoch: int, world_size: int, ids_per_batch: int,
               tracklets_per_id: int, batches_per_epoch: int | None, role: str) -> list[PlanRow]:
    groups = _by_pid(records, role)
    pids = np.array(list(groups))
    if len(pids) < ids_per_batch:
        raise ReidError(f"P x K batching needs at least data.ids_per_batch={ids_per_batch} training identities, "
                        f"the manifest has {len(pids)}")
    n_batches = num_pk_batches(len(pids), ids_per_batch, batches_per_epoch, world_size)
    rng = _plan_rng(seed, epoch)
    queue: deque[int] = deque()
    rows = []
    for b in range(n_batches):
        chosen: list[int] = []
        deferred: list[int] = []
        while len(chosen) < ids_per_batch:
            if not queue:
                queue.extend(int(p) for p in rng.permutation(pids))
            p = queue.popleft()
            # a pid met again across a permutation boundary waits for the next batch
            (deferred if p in chosen else chosen).append(p)
        queue.extendleft(reversed(deferred))
        indices: list[int] = []
        for p in chosen:
            pool = groups[p]
            pick = rng.choice(len(pool), size=tracklets_per_id, replace=len(pool) < tracklets_per_id)
            indices.extend(pool[int(i)] for i in pick)
        rows.append(PlanRow(epoch, b, tuple(indices), row_seed(seed, epoch, b)))
    return rows


def num_pair_batches(num_pos_ids: int, pairs_per_batch: int, batches_per_epoch: int | None,
                     world_size: int) -> int:
    """Global batches per epoch: enough for about one positive pair per eligible identity, or the given count."""
    wanted = batches_per_epoch if batches_per_epoch is not None else math.ceil(2 * num_pos_ids / pairs_per_batch)
    return _round_up(wanted, world_size)


def pair_plan(records: Sequence[TrackletRecord], *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
              pairs_per_batch: int, batches_per_epoch: int | None = None, role: str = "train",
              pair_cameras: PairCameras = "cross") -> list[PlanRow]:
    """The rows of rank `rank` of the epoch's siamese pair plan (positives across cameras, negatives across ids
    and, with `pair_cameras="cross"`, across cameras)."""
    _check_world(rank, world_size)
    return _pair_global(records, seed, epoch, world_size, pairs_per_batch, batches_per_epoch, role,
                        pair_cameras)[rank::world_size]


def _cross_negative(rng: np.random.Generator, records: Sequence[TrackletRecord], all_ids: np.ndarray,
                    groups: dict[int, list[int]], cams: dict[int, dict[int, list[int]]],
                    elsewhere: dict[int, list[int]]) -> tuple[int, int]:
    """Side A: a uniform identity p and one of its tracklets (camera c); side B: a uniform identity q != p seen
    by some camera other than c (`elsewhere[c]`), and one of q's tracklets from such a camera. Side A is drawn
    again when no such q exists (e.g. p is the only identity camera 2 saw)."""
    for _ in range(100):
        p = int(rng.choice(all_ids))
        a = groups[p][int(rng.integers(len(groups[p])))]
        cam = records[a].camid
        partners = [q for q in elsewhere[cam] if q != p]
        if partners:
            q = partners[int(rng.integers(len(partners)))]
            pool = [i for c in sorted(cams[q]) if c != cam for i in cams[q][c]]
            return a, pool[int(rng.integers(len(pool)))]
    raise ReidError("cross-camera negative pairs need two identities seen by different cameras; set "
                    "data.pair_cameras=any to draw negatives regardless of camera")


def _pair_global(records: Sequence[TrackletRecord], seed: int, epoch: int, world_size: int, pairs_per_batch: int,
                 batches_per_epoch: int | None, role: str, pair_cameras: PairCameras = "cross") -> list[PlanRow]:
    groups = _by_pid(records, role)
    pids = list(groups)
    if len(pids) < 2:
        raise ReidError(f"pair batching needs at least 2 training identities, the manifest has {len(pids)}")
    cams = {p: defaultdict(list) for p in pids}
    for p in pids:
        for i in groups[p]:
            cams[p][records[i].camid].append(i)
    pos_ids = np.array([p for p in pids if len(cams[p]) >= 2])
    if len(pos_ids) == 0:
        raise ReidError("positive pairs need identities seen by two different cameras; no training identity is")
    n_batches = num_pair_batches(len(pos_ids), pairs_per_batch, batches_per_epoch, world_size)
    rng = _plan_rng(seed, epoch)
    pos_queue: deque[int] = deque()
    all_ids = np.array(pids)
    # camera -> identities seen by some other camera (the candidates for side B of a cross-camera negative)
    elsewhere = {c: [q for q in pids if any(cc != c for cc in cams[q])] for c in {r.camid for r in records}}
    rows = []
    for b in range(n_batches):
        # an odd N gives the extra pair to positives on alternate local steps of each rank, and, within one
        # step, to alternate ranks: every rank alternates and every step is balanced when world_size is even
        extra = pairs_per_batch % 2 if (b // world_size + b % world_size) % 2 == 0 else 0
        n_pos = pairs_per_batch // 2 + extra
        pairs: list[tuple[int, int, float]] = []
        for _ in range(n_pos):
            if not pos_queue:
                pos_queue.extend(int(p) for p in rng.permutation(pos_ids))
            p = pos_queue.popleft()
            cam_a, cam_b = rng.choice(sorted(cams[p]), size=2, replace=False)
            a = cams[p][int(cam_a)][int(rng.integers(len(cams[p][int(cam_a)])))]
            c = cams[p][int(cam_b)][int(rng.integers(len(cams[p][int(cam_b)])))]
            pairs.append((a, c, 1.0))
        for _ in range(pairs_per_batch - n_pos):
            if pair_cameras == "cross":
                a, c = _cross_negative(rng, records, all_ids, groups, cams, elsewhere)
            else:
                p, q = rng.choice(all_ids, size=2, replace=False)
                a = groups[int(p)][int(rng.integers(len(groups[int(p)])))]
                c = groups[int(q)][int(rng.integers(len(groups[int(q)])))]
            pairs.append((a, c, 0.0))
        order = rng.permutation(len(pairs))
        pairs = [pairs[int(i)] for i in order]
        indices = tuple(a for a, _, _ in pairs) + tuple(c for _, c, _ in pairs)
        rows.append(PlanRow(epoch, b, indices, row_seed(seed, epoch, b), tuple(s for _, _, s in pairs)))
    return rows


def global_plan(records: Sequence[TrackletRecord], data: DataConfig, seed: int, batching: Batching, epoch: int,
                world_size: int = 1) -> list[PlanRow]:
    """All rows of the epoch in global batch order (a multiple of world_size of them), with the batch sizes of
    `data` (the config's `data` section) and the run's `seed`."""
    d = data
    if batching == "pk":
        return _pk_global(records, seed, epoch, world_size, d.ids_per_batch, d.tracklets_per_id,
                          d.batches_per_epoch, "train")
    if batching == "pairs":
        return _pair_global(records, seed, epoch, world_size, d.pairs_per_batch, d.batches_per_epoch, "train",
                            d.pair_cameras)
    raise ReidError(f"unknown batching '{batching}'; expected 'pk' or 'pairs'")


def epoch_plan(records: Sequence[TrackletRecord], data: DataConfig, seed: int, batching: Batching, epoch: int, *,
               rank: int = 0, world_size: int = 1) -> list[PlanRow]:
    """Rows of `rank` for `epoch` with the batch sizes of `data` and `seed` (`batching` = MethodSpec.batching)."""
    _check_world(rank, world_size)
    return global_plan(records, data, seed, batching, epoch, world_size)[rank::world_size]
