"""ASTPN: jointly attentive spatial-temporal pooling networks (Xu et al., ICCV 2017).

Per frame: the RCN CNN (YUV + flow, 56x40) whose conv3 is followed by spatial pyramid max pooling with 8x8, 4x4,
2x2, 1x1 bins (section 3.1, eq. 1) -> r_t in R^L. Recurrent layer (eq. 2): o_t = U r_t + W s_{t-1},
s_t = tanh(o_t), s_0 = 0, N = 128; dropout (0.6, official code) on the outputs that the pooling sees. Attentive
temporal pooling of a probe / gallery pair (eqs. 3-5): A = tanh(P U G^T) with a learned N x N matrix U,
t_p = max over gallery time (row-wise), t_g = max over probe time (column-wise), a = softmax(t), v_p = P^T a_p,
v_g = G^T a_g. Trained siamese with eq. 6 (hinge on the squared distance, m = 3) + an ID loss on v_p and v_g.

Variants (fig. 5): RNN-CNN (max-pool after conv3, temporal mean pooling), ATPN (attentive temporal pooling only),
ASPN (spatial pyramid only), ASTPN (both).

Evaluation: `forward` without `pair_same` pairs each sequence with itself (what the official code does at test
time), so `features` is one vector per sequence. The true query-dependent distance is the `PairwiseScorer` pair:
`encode_sequences` computes the RNN outputs once per sequence and `pair_distance` evaluates eqs. 3-5 for every
query-gallery pair, in blocks of pairs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from reid.losses.siamese import HingeKind, SiameseLossParams, SiameseObjective, split_pairs
from reid.models.layers.module import ReidModule
from reid.models.layers.rcn import RCNFrameCNN, rcn_input
from reid.registration import register_method
from reid.spec import DataInfo, Params


class AstpnParams(Params):
    use_flow: bool = Field(True, description="5-channel input (YUV + 2 flow); false: the 3 colour channels only")
    filters: list[int] = Field(default_factory=lambda: [16, 32, 32], min_length=1)
    spatial_pooling: Literal["spp", "maxpool"] = Field("spp", description="spp: eq. 1 after conv3; maxpool: RCN")
    spp_levels: list[int] = Field(default_factory=lambda: [8, 4, 2, 1], min_length=1)
    spp_mode: Literal["adaptive", "paper"] = Field("adaptive", description="bin rule, see layers/spp.py")
    hidden: int = Field(128, ge=1, description="N, the recurrent state / feature size")
    dropout: float = Field(0.6, ge=0, lt=1)
    temporal_pooling: Literal["attentive", "mean"] = "attentive"
    pairwise_block: int = Field(131_072, ge=1, description="query-gallery pairs per block in pair_distance")


class AstpnLossParams(SiameseLossParams):
    hinge: HingeKind = "sq_distance"
    margin: float = Field(3.0, gt=0)


class RecurrentLayer(nn.Module):
    """Eq. 2: r [B, T, L] -> s [B, T, N] with s_t = tanh(U r_t + W s_{t-1}), s_0 = 0."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.U = nn.Linear(in_dim, hidden)
        self.W = nn.Linear(hidden, hidden, bias=False)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        ur = self.U(r)                                  # the input projection of every step at once
        s = ur.new_zeros(ur.shape[0], ur.shape[2])
        states = []
        for t in range(ur.shape[1]):                    # the recurrence itself is sequential
            s = torch.tanh(ur[:, t] + self.W(s))
            states.append(s)
        return torch.stack(states, dim=1)


def _masked_softmax(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None:
        t = t.masked_fill(~mask, float("-inf"))
    return t.softmax(dim=-1)


def attentive_pool(p: torch.Tensor, g: torch.Tensor, u: torch.Tensor, p_mask: torch.Tensor | None = None,
                   g_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eqs. 3-5. p: [..., T, N], g: [..., S, N], u: [N, N], masks [..., T] / [..., S] bool (True = real frame).

    Returns (v_p [..., N], v_g [..., N], a_p [..., T], a_g [..., S]). Padded frames are excluded from both maxima
    and from the softmax.
    """
    a = torch.tanh((p @ u) @ g.transpose(-1, -2))                       # eq. 3, [..., T, S]
    a_for_p, a_for_g = a, a
    if g_mask is not None:
        a_for_p = a.masked_fill(~g_mask.unsqueeze(-2), float("-inf"))
    if p_mask is not None:
        a_for_g = a.masked_fill(~p_mask.unsqueeze(-1), float("-inf"))
    t_p = a_for_p.amax(dim=-1)                                          # row-wise max: probe frame scores
    t_g = a_for_g.amax(dim=-2)                                          # column-wise max: gallery frame scores
    a_p, a_g = _masked_softmax(t_p, p_mask), _masked_softmax(t_g, g_mask)   # eq. 4
    v_p = (a_p.unsqueeze(-2) @ p).squeeze(-2)                           # eq. 5: P^T a_p
    v_g = (a_g.unsqueeze(-2) @ g).squeeze(-2)
    return v_p, v_g, a_p, a_g


def mean_pool(x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x: [..., T, N] -> (mean over valid frames [..., N], weights [..., T])."""
    if mask is None:
        w = torch.full(x.shape[:-1], 1.0 / x.shape[-2], dtype=x.dtype, device=x.device)
    else:
        w = mask.to(x.dtype) / mask.sum(dim=-1, keepdim=True).clamp_min(1).to(x.dtype)
    return (w.unsqueeze(-2) @ x).squeeze(-2), w


class ASTPN(ReidModule):
    """batch -> `features` / `embedding` [B, N] (v of each sequence: paired with its partner in a pairs batch,
    with itself otherwise), `logits` [B, C], `temporal_weights` [B, T] (a_p / a_g, or 1/T for mean pooling).
    """

    def __init__(self, params: AstpnParams, info: DataInfo) -> None:
        super().__init__()
        self.p = params
        self.cnn = RCNFrameCNN(5 if params.use_flow else 3, info.height, info.width, tuple(params.filters),
                               spatial=params.spatial_pooling, spp_levels=tuple(params.spp_levels),
                               spp_mode=params.spp_mode, embed_dim=None, dropout=0.0)
        self.rnn = RecurrentLayer(self.cnn.out_dim, params.hidden)
        self.dropout = nn.Dropout(params.dropout)
        if params.temporal_pooling == "attentive":
            # Small init: A starts near 0, so the first steps pool almost uniformly (like RNN-CNN).
            self.U = nn.Parameter(torch.randn(params.hidden, params.hidden) / params.hidden)
        else:
            self.register_parameter("U", None)
        self.classifier = nn.Linear(params.hidden, info.num_classes)

    @property
    def attentive(self) -> bool:
        return self.U is not None

    def encode_sequences(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch -> RNN outputs [B, T, N] (the P / G matrices of eq. 3), computed once per sequence."""
        return self.dropout(self.rnn(self.cnn(rcn_input(batch, self.p.use_flow))))

    def pool_pair(self, p: torch.Tensor, g: torch.Tensor, p_mask: torch.Tensor | None = None,
                  g_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pool aligned pairs: p [..., T, N], g [..., S, N] -> (v_p, v_g, a_p, a_g)."""
        if self.attentive:
            return attentive_pool(p, g, self.U, p_mask, g_mask)
        v_p, a_p = mean_pool(p, p_mask)
        v_g, a_g = mean_pool(g, g_mask)
        return v_p, v_g, a_p, a_g

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        states = self.encode_sequences(batch)                               # [B, T, N]
        if "pair_same" in batch:
            side_a, side_b = split_pairs(states, batch["pair_same"])
            v_a, v_b, w_a, w_b = self.pool_pair(side_a, side_b)
            v, w = torch.cat([v_a, v_b]), torch.cat([w_a, w_b])
        else:
            v, _, w, _ = self.pool_pair(states, states)                     # self-pairing (official test code)
        return {"features": v, "embedding": v, "logits": self.classifier(v), "temporal_weights": w}

    @torch.no_grad()
    def pair_distance(self, q: torch.Tensor, g: torch.Tensor, q_mask: torch.Tensor | None = None,
                      g_mask: torch.Tensor | None = None, normalize: bool = False) -> torch.Tensor:
        """`PairwiseScorer`: q [Nq, T, N], g [Ng, S, N] (from `encode_sequences`) -> distances [Nq, Ng].

        d(i, j) = ||v_p - v_g|| with (v_p, v_g) pooled by eqs. 3-5 for the pair (q_i, g_j) (mean pooling when the
        variant has no attention, which makes it the self-paired distance). `normalize` L2-normalises v_p and v_g
        first, as evaluation does with self-paired features when eval.normalize is set.
        """
        if not self.attentive:
            v_q, _ = mean_pool(q, q_mask)
            v_g, _ = mean_pool(g, g_mask)
            if normalize:
                v_q, v_g = F.normalize(v_q, dim=-1), F.normalize(v_g, dim=-1)
            return torch.cdist(v_q.float(), v_g.float())
        return attentive_pair_distance(q, g, self.U, q_mask, g_mask, normalize, self.p.pairwise_block)


def attentive_pair_distance(q: torch.Tensor, g: torch.Tensor, u: torch.Tensor, q_mask: torch.Tensor | None = None,
                            g_mask: torch.Tensor | None = None, normalize: bool = False,
                            block: int = 131_072) -> torch.Tensor:
    """Eqs. 3-5 for every (query, gallery) pair: q [Nq, T, N], g [Ng, S, N], u [N, N] -> ||v_p - v_g|| [Nq, Ng].

    q U is computed once per query; A for a block of bq x bg pairs is one [bq*T, N] x [N, bg*S] product. Blocks
    hold about `block` pairs, so peak memory is O(block * (T * S + N)) floats whatever the gallery size
    (3-5 KB per pair for T = S = 16, N = 128; `reid.evaluation.pairwise` adds its own outer blocking).
    """
    nq, t, _ = q.shape
    ng, s, _ = g.shape
    qu = q @ u                                                               # [Nq, T, N]
    out = torch.empty(nq, ng, dtype=torch.float32, device=q.device)
    cols = min(ng, max(1, block // max(nq, 1)))
    rows = min(nq, max(1, block // cols))
    for i in range(0, nq, rows):
        qi, qui = q[i:i + rows], qu[i:i + rows]
        bq = qi.shape[0]
        qm = q_mask[i:i + rows] if q_mask is not None else None
        for j in range(0, ng, cols):
            gj = g[j:j + cols]
            bg = gj.shape[0]
            gm = g_mask[j:j + cols] if g_mask is not None else None
            # eq. 3 as one GEMM, kept in its natural [bq, T, bg, S] layout so both maxima reduce in place. tanh is
            # monotonic, so max(tanh(x)) = tanh(max(x)): it is applied to the 2 x T maxima, not to all T x S entries.
            x = (qui.reshape(bq * t, -1) @ gj.reshape(bg * s, -1).t()).view(bq, t, bg, s)
            x_p = x if gm is None else x.masked_fill(~gm[None, None, :, :], float("-inf"))
            x_g = x if qm is None else x.masked_fill(~qm[:, :, None, None], float("-inf"))
            t_p = torch.tanh(x_p.amax(dim=3)).transpose(1, 2)                            # [bq, bg, T]
            t_g = torch.tanh(x_g.amax(dim=1))                                             # [bq, bg, S]
            w_p = _masked_softmax(t_p, None if qm is None else qm[:, None, :])             # eq. 4
            w_g = _masked_softmax(t_g, None if gm is None else gm[None, :, :])
            v_p = w_p @ qi                                                                # eq. 5, [bq, bg, N]
            v_g = (w_g.transpose(0, 1) @ gj).transpose(0, 1)                              # [bq, bg, N]
            if normalize:
                v_p, v_g = F.normalize(v_p, dim=-1), F.normalize(v_g, dim=-1)
            out[i:i + bq, j:j + bg] = (v_p - v_g).float().norm(dim=-1)
    return out


VARIANTS = {
    "RNN-CNN": {"model.spatial_pooling": "maxpool", "model.temporal_pooling": "mean"},
    "ATPN": {"model.spatial_pooling": "maxpool", "model.temporal_pooling": "attentive"},
    "ASPN": {"model.spatial_pooling": "spp", "model.temporal_pooling": "mean"},
    "ASTPN": {"model.spatial_pooling": "spp", "model.temporal_pooling": "attentive"},
    "no-flow": {"model.use_flow": False},
}

def _objective(params: AstpnLossParams, info: DataInfo) -> SiameseObjective:
    return SiameseObjective(params)


@register_method(
    objective=_objective,
    classifier="classifier",
    model_params=AstpnParams,
    loss_params=AstpnLossParams,
    # "flow" stays declared with model.use_flow=false (the spec is static); the model then ignores it.
    inputs=frozenset({"frames", "flow"}),
    batching="pairs",
    input_norm="yuv",
    variants=VARIANTS,
    default_config="astpn",
    description="RCN CNN (YUV + flow) + spatial pyramid pooling + RNN (eq. 2) + attentive temporal pooling "
                "(eqs. 3-5); siamese hinge eq. 6 (m=3) + ID loss per branch",
)
def astpn(params: AstpnParams, info: DataInfo) -> ASTPN:
    return ASTPN(params, info)
