"""SimCLR's contrastive losses: NT-Xent (Eq. 1, Algorithm 1) and Table 2's NT-Logistic and margin triplet, plus
one later variant, decoupled NT-Xent ("dcl": Yeh et al., 2022, not in the SimCLR paper).

Every loss has one signature, `fn(z1, z2, *, temperature, normalize, semi_hard, margin) -> scalar`, where
z1, z2 (n, d) are the projections z = g(h) of the two augmented views of this process's n images, and
row i of z1 and row i of z2 form the positive pair. `LOSSES[cfg.loss.kind]` selects one.

Negatives come from the whole global batch. When torch.distributed runs with W > 1 processes, each
process all-gathers the (normalised) projections with gradient and computes only its LOCAL rows
(anchors) against the GLOBAL columns (candidates): a (2n, 2N) block, never the (2N, 2N) matrix, with
N = W n. Positive columns are offset by rank. Each process returns the mean over its local anchors, so
the mean of the W per-process losses equals the single-process loss on the whole batch, and with the
gradient contract of `distributed.all_gather_with_grad` the DDP-averaged gradients equal the
single-process gradients.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from simclr_core import distributed
from simclr_core.config import LossConfig
from simclr_core.validation import ConfigError, require_choice, require_range

# Memory of NT-Xent. When the whole (2n, 2N) matrix of exponentiated logits holds at most _KEEP_ELEMENTS
# (256 MiB in float32: 2N = 8192 on one process), the forward computes it in one block and keeps it for
# backward. Larger problems go in row chunks of at most _CHUNK_ELEMENTS (64 MiB) each, and backward
# recomputes every chunk (one more GEMM and exp), so memory stays bounded for any 2N.
_CHUNK_ELEMENTS = 1 << 24
_KEEP_ELEMENTS = 1 << 26


# ---- shared: the views, the global candidates, and the positive indices ----------------------------
def _check_inputs(z1: Tensor, z2: Tensor, temperature: float) -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (n, d); got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] == 0:
        raise ValueError("z1 and z2 hold no rows")
    require_range("loss.temperature", temperature, low=0, low_inclusive=False)


def _anchors_and_candidates(z1: Tensor, z2: Tensor, normalize: bool) -> tuple[Tensor, Tensor, int]:
    """Return (anchors, candidates, offset).

    anchors (2n, d): this process's views [z1; z2], l2-normalised if `normalize` (the paper's
    sim(u, v) = u^T v / (||u|| ||v||)); half precision is promoted to float32.
    candidates (W*2n, d): every process's anchors in rank order ([z1_0; z2_0; z1_1; z2_1; ...]),
    differentiable; the same tensor as `anchors` with one process.
    offset: rank * 2n, the column of this process's first anchor among the candidates.
    """
    z = torch.cat([z1, z2])                                         # (2n, d)
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    if normalize:
        z = F.normalize(z, dim=1)
    if not distributed.is_distributed():
        return z, z, 0
    return z, distributed.all_gather_with_grad(z), distributed.rank() * z.shape[0]


def _self_and_positive_columns(n: int, offset: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Column of each anchor itself and of its positive among the candidates: (2n,) each."""
    local = torch.arange(2 * n, device=device)                      # (2n,)
    return local + offset, (local + n) % (2 * n) + offset


def _row_chunks(rows: int, columns: int, whole: bool = False) -> list[tuple[int, int]]:
    """[start, stop) row ranges whose blocks hold at most _CHUNK_ELEMENTS; a single range if `whole`."""
    step = rows if whole else max(1, _CHUNK_ELEMENTS // max(columns, 1))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


# ---- NT-Xent ------------------------------------------------------------------------------------
class _NTXent(torch.autograd.Function):
    """mean_i [logsumexp_{k not masked for i} s_ik / t - s_i,pos(i) / t] for anchors (R, d) against candidates
    (M, d). `masked_cols` lists the columns left out of each anchor's denominator: (R,) its own (NT-Xent), or
    (R, 2) its own and its positive's (decoupled NT-Xent).

    Forward, per chunk of anchors: block = exp(logits - rowmax) in place, with the row sums. Backward
    needs only softmax = block / rowsum, so autograd's copies of the logits, masked logits and
    log-softmax are never made: it reuses the kept blocks, or recomputes each one from the saved
    inputs and row maxima when keeping them all would exceed _KEEP_ELEMENTS. Peak extra memory is
    the kept blocks (or one block) plus the (M, d) gradient.
    """

    @staticmethod
    def forward(ctx, anchors: Tensor, candidates: Tensor, masked_cols: Tensor, pos_cols: Tensor,
                temperature: float) -> Tensor:
        inv_t = 1.0 / temperature
        keep = anchors.shape[0] * candidates.shape[0] <= _KEEP_ELEMENTS
        with torch.autocast(anchors.device.type, enabled=False):
            rowmax = anchors.new_empty(anchors.shape[0])                                # (R,)
            rowsum = anchors.new_empty(anchors.shape[0])                                # (R,)
            kept = []
            for start, stop in _row_chunks(anchors.shape[0], candidates.shape[0], whole=keep):
                block = _masked_logits(anchors[start:stop] * inv_t, candidates, masked_cols[start:stop])  # (c, M)
                rowmax[start:stop] = block.amax(1)
                block.sub_(rowmax[start:stop, None]).exp_()        # unnormalised softmax; masked -> 0
                rowsum[start:stop] = block.sum(1)
                if keep:
                    kept.append(block)
                del block   # free a block that is not kept before the next one is allocated
            lse = rowmax + rowsum.log()                                                 # (R,)
            positive = (anchors * candidates[pos_cols]).sum(1) * inv_t                  # (R,)
            loss = (lse - positive).mean()
        ctx.save_for_backward(anchors, candidates, masked_cols, pos_cols, rowmax, rowsum, *kept)
        ctx.inv_t = inv_t
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: Tensor):
        anchors, candidates, masked_cols, pos_cols, rowmax, rowsum, *kept = ctx.saved_tensors
        # d loss / d logit_ik = (p_ik - [k = pos(i)]) / R, p the softmax over the unmasked columns (so with the
        # positive masked, its column gets only the -1), and d logit_ik = (a_i . c_k) / t
        scale = grad_loss * (ctx.inv_t / anchors.shape[0])                              # 0-d
        with torch.autocast(anchors.device.type, enabled=False):
            grad_anchors = torch.empty_like(anchors)                                    # (R, d)
            grad_candidates = torch.zeros_like(candidates)                              # (M, d)
            chunks = _row_chunks(anchors.shape[0], candidates.shape[0], whole=bool(kept))
            for k, (start, stop) in enumerate(chunks):
                if kept:
                    block = kept[k]                                                     # (c, M)
                else:
                    block = _masked_logits(anchors[start:stop] * ctx.inv_t, candidates, masked_cols[start:stop],
                                           shift=rowmax[start:stop]).exp_()            # (c, M)
                inv_rowsum = rowsum[start:stop, None].reciprocal()                      # (c, 1)
                # softmax = block / rowsum: divide the thin (c, d) operands, not the (c, M) block
                torch.mm(block, candidates, out=grad_anchors[start:stop]).mul_(inv_rowsum)
                grad_candidates.addmm_(block.T, anchors[start:stop] * inv_rowsum)
                del block
            grad_anchors.sub_(candidates[pos_cols]).mul_(scale)
            grad_candidates.index_add_(0, pos_cols, anchors, alpha=-1).mul_(scale)
        return grad_anchors, grad_candidates, None, None, None


def _masked_logits(scaled_anchors: Tensor, candidates: Tensor, masked_cols: Tensor,
                   shift: Tensor | None = None) -> Tensor:
    """(anchors / t) (c, d) . candidates (M, d)^T - shift (c,), with each anchor's `masked_cols` (c,) or (c, m)
    at -inf: (c, M).

    1/t scales the small (c, d) operand, and the shift rides in the GEMM, so no extra pass over (c, M).
    """
    if shift is None:
        logits = torch.mm(scaled_anchors, candidates.T)
    else:
        logits = torch.addmm(shift[:, None], scaled_anchors, candidates.T, beta=-1)
    columns = masked_cols[:, None] if masked_cols.dim() == 1 else masked_cols
    return logits.scatter_(1, columns, float("-inf"))


def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float = 0.5, normalize: bool = True,
            semi_hard: bool = False, margin: float = 0.4) -> Tensor:
    """NT-Xent, the normalised temperature-scaled cross entropy of Eq. (1), reduced as in Algorithm 1.

    "l_ij = -log [exp(sim(z_i, z_j)/t) / sum_{k=1}^{2N} 1[k != i] exp(sim(z_i, z_k)/t)]" and "the final loss
    is computed across all positive pairs, both (i, j) and (j, i), in a mini-batch":
    L = 1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)], i.e. the MEAN over all 2N views of the cross entropy of
    a softmax over the 2N-1 other views. The official TF code (objective.py, add_contrastive_loss)
    returns loss_a + loss_b, the SUM of the two directional means: twice this value.

    z1, z2: (n, d) projections of the two views; row i of each is a positive pair. sim is cosine
    similarity when `normalize` (default), the raw dot product otherwise (Table 5's "l2 norm? No").
    Computed in log space (logsumexp with each view's self-similarity masked to -inf; the exp is taken
    only after subtracting the row maximum, and no log of a sum of exps is ever taken unshifted), in
    float32 at least, by a custom autograd Function that keeps only the exponentiated logits (or, for
    large batches, recomputes them in row chunks): see _NTXent and _KEEP_ELEMENTS. `margin` is unused;
    `semi_hard` is rejected: NT-Xent weighs every negative by its softmax probability, which is why the
    paper mines only for the other losses (Section 5.1).
    """
    return _softmax_loss(z1, z2, temperature, normalize, semi_hard, decoupled=False)


def dcl(z1: Tensor, z2: Tensor, *, temperature: float = 0.5, normalize: bool = True,
        semi_hard: bool = False, margin: float = 0.4) -> Tensor:
    """Decoupled NT-Xent (Yeh et al., 2022, "Decoupled Contrastive Learning", Eq. 6): NT-Xent with the positive
    also left out of the denominator,

        l_ij = -sim(z_i, z_j)/t + log sum_{k != i, k != j} exp(sim(z_i, z_k)/t),

    averaged over all 2N views like NT-Xent. Not one of the SimCLR paper's losses: in NT-Xent the gradient of
    every view is scaled by 1 - p_ij, the softmax weight of its own positive, which shrinks the update of
    the views whose positive is already easy to tell apart; that coupling is strongest with few negatives
    (small batches), and dropping the positive from the denominator removes it. The loss can be negative.
    Same computation as `nt_xent` (log space, float32 at least, the same custom backward); needs at least
    two images in the global batch, so that every view keeps a negative.
    """
    return _softmax_loss(z1, z2, temperature, normalize, semi_hard, decoupled=True)


def _softmax_loss(z1: Tensor, z2: Tensor, temperature: float, normalize: bool, semi_hard: bool,
                  decoupled: bool) -> Tensor:
    """NT-Xent, or with `decoupled` its positive also left out of every denominator (`dcl`)."""
    _check_inputs(z1, z2, temperature)
    if semi_hard:
        raise ConfigError("loss.semi_hard=True applies to 'nt_logistic' and 'margin_triplet' only; NT-Xent "
                          "(and its decoupled form) already weighs negatives by their hardness (Section 5.1)")
    anchors, candidates, offset = _anchors_and_candidates(z1, z2, normalize)      # (2n, d), (2N, d)
    if decoupled and candidates.shape[0] < 4:
        raise ValueError(f"decoupled NT-Xent needs at least 2 images in the global batch (a negative for every "
                         f"view); got {candidates.shape[0] // 2}")
    self_cols, pos_cols = _self_and_positive_columns(z1.shape[0], offset, anchors.device)   # (2n,) each
    masked_cols = torch.stack([self_cols, pos_cols], 1) if decoupled else self_cols
    return _NTXent.apply(anchors, candidates, masked_cols, pos_cols, temperature)


# ---- NT-Logistic and margin triplet (Table 2, Appendix B.10) ---------------------------------------
def _other_view_similarities(z1: Tensor, z2: Tensor, normalize: bool) -> tuple[Tensor, Tensor]:
    """Similarity of each local anchor to every image's OTHER view; Appendix B.10: "we only consider the
    negatives from one augmentation view (instead of both sides)".

    Returns sim (2n, N): row i < n is z1_i against the second views of all N global images, row n + i is
    z2_i against all first views; and pos (2n,), the column of each row's positive (its own image).
    Every other column is a negative: N - 1 per anchor.
    """
    anchors, candidates, offset = _anchors_and_candidates(z1, z2, normalize)      # (2n, d), (W*2n, d)
    n, d = z1.shape
    by_view = candidates.view(-1, 2, n, d)                                      # (W, 2, n, d)
    first, second = (by_view[:, v].reshape(-1, d) for v in (0, 1))              # (N, d) each
    sim = torch.cat([anchors[:n] @ second.T, anchors[n:] @ first.T])            # (2n, N)
    if sim.shape[1] < 2:
        raise ValueError("nt_logistic and margin_triplet need at least 2 images in the global batch")
    pos = (torch.arange(2 * n, device=sim.device) % n) + offset // 2            # (2n,)
    return sim, pos


def _semi_hard_negatives(sim: Tensor, pos_sim: Tensor, pos: Tensor) -> Tensor:
    """Similarity of each anchor's semi-hard negative: (2n,).

    Semi-hard (Schroff et al., 2015, as in Section 5.1: "those that are within the loss margin and
    closest in distance, but farther than positive examples"): among the negatives LESS similar to
    the anchor than its positive (s_neg < s_pos), the MOST similar one. When every negative is more
    similar than the positive there is none; then the least similar negative is used (the fallback
    of TensorFlow's triplet_semihard_loss). For the margin loss, a mined negative outside the margin
    (s_neg <= s_pos - m) contributes zero; NT-Logistic has no margin and uses the same rule. The
    choice is not differentiated; the chosen similarity is. Mining runs over the global batch.
    """
    negative = torch.ones_like(sim, dtype=torch.bool).scatter_(1, pos[:, None], False)   # (2n, N)
    below = negative & (sim < pos_sim[:, None])                                           # (2n, N)
    hardest_below = sim.masked_fill(~below, float("-inf")).max(1).values                 # (2n,)
    easiest = sim.masked_fill(~negative, float("inf")).min(1).values                      # (2n,)
    return torch.where(below.any(1), hardest_below, easiest)


def nt_logistic(z1: Tensor, z2: Tensor, *, temperature: float = 0.5, normalize: bool = True,
                semi_hard: bool = False, margin: float = 0.4) -> Tensor:
    """NT-Logistic, Table 2: maximise log sigma(u^T v+ / t) + log sigma(-u^T v- / t).

    Each of the 2n anchors u (both views, as in NT-Xent) has its positive v+ (the other view of its
    image) and, per Appendix B.10, the N - 1 negatives v- from the other view only. Reduction:
    the MEAN over all (anchor, negative) triplets of -[log sigma(s+/t) + log sigma(-s-/t)], i.e.
    mean over anchors of [softplus(-s+/t) + mean over its negatives of softplus(s-/t)]; each triplet's
    gradient is Table 2's. With `semi_hard`, each anchor keeps one triplet, with its semi-hard negative
    (see `_semi_hard_negatives`), and the loss is the mean over anchors. s = cosine similarity when
    `normalize`, dot product otherwise. `margin` is unused.
    """
    _check_inputs(z1, z2, temperature)
    sim, pos = _other_view_similarities(z1, z2, normalize)                     # (2n, N), (2n,)
    pos_sim = sim.gather(1, pos[:, None]).squeeze(1)                            # (2n,)
    positive_term = F.softplus(-pos_sim / temperature)                          # (2n,) = -log sigma(s+/t)
    if semi_hard:
        negative_term = F.softplus(_semi_hard_negatives(sim, pos_sim.detach(), pos) / temperature)   # (2n,)
    else:
        per_pair = F.softplus(sim / temperature).scatter(1, pos[:, None], 0.0)   # (2n, N) = -log sigma(-s-/t)
        negative_term = per_pair.sum(1) / (sim.shape[1] - 1)                     # (2n,)
    return (positive_term + negative_term).mean()


def margin_triplet(z1: Tensor, z2: Tensor, *, temperature: float = 0.5, normalize: bool = True,
                   semi_hard: bool = False, margin: float = 0.4) -> Tensor:
    """Margin triplet, Table 2: maximise -max(u^T v- - u^T v+ + m, 0), i.e. minimise the hinge.

    Anchors, positives and negatives as in `nt_logistic` (negatives from the other view, Appendix
    B.10). Reduction: the MEAN over all (anchor, negative) triplets of max(s- - s+ + m, 0); with
    `semi_hard`, the mean over anchors of the hinge at its semi-hard negative. The similarities are
    not divided by a temperature (Table 2): `temperature` is only validated. The paper tunes m in
    {0, 0.4, 0.8, 1.6} (Appendix B.10).
    """
    _check_inputs(z1, z2, temperature)
    require_range("loss.margin", margin, low=0)
    sim, pos = _other_view_similarities(z1, z2, normalize)                     # (2n, N), (2n,)
    pos_sim = sim.gather(1, pos[:, None]).squeeze(1)                            # (2n,)
    if semi_hard:
        return F.relu(_semi_hard_negatives(sim, pos_sim.detach(), pos) - pos_sim + margin).mean()
    hinge = F.relu(sim - pos_sim[:, None] + margin).scatter(1, pos[:, None], 0.0)   # (2n, N)
    return hinge.sum() / (hinge.shape[0] * (hinge.shape[1] - 1))


LOSSES: dict[str, Callable[..., Tensor]] = {
    "nt_xent": nt_xent,
    "nt_logistic": nt_logistic,
    "margin_triplet": margin_triplet,
    "dcl": dcl,
}


def compute_loss(cfg: LossConfig, z1: Tensor, z2: Tensor) -> Tensor:
    """The loss named by `cfg.kind` on projections z1, z2 (n, d), with the config's knobs."""
    loss = LOSSES[require_choice("loss.kind", cfg.kind, LOSSES)]
    return loss(z1, z2, temperature=cfg.temperature, normalize=cfg.normalize, semi_hard=cfg.semi_hard,
                margin=cfg.margin)


def compute_multicrop_loss(cfg: LossConfig, z1: Tensor, z2: Tensor, small: Sequence[Tensor] = ()) -> Tensor:
    """Multi-crop's loss: the mean of `compute_loss` over the pair of full-size views (z1, z2) and every pair
    of a full-size view with a small one, (z1, s) and (z2, s) for s in `small` (SwAV's pairing: small views are
    never contrasted with each other). With no small views it is `compute_loss(cfg, z1, z2)`. Each pair's
    negatives are the other views of that pair, as in the two-view loss."""
    pairs = [(z1, z2)] + [(full, s) for s in small for full in (z1, z2)]
    return sum(compute_loss(cfg, a, b) for a, b in pairs) / len(pairs)


# ---- Table 5's diagnostics ------------------------------------------------------------------------
@torch.no_grad()
def contrastive_stats(z1: Tensor, z2: Tensor, *, temperature: float = 0.5,
                      normalize: bool = True) -> dict[str, Tensor]:
    """Table 5's "Contrastive acc." and "Entropy" of the NT-Xent distribution, as 0-d tensors (no host sync).

    For each of the local 2n views, the contrastive distribution is the softmax over the 2N - 1 other
    views of the global batch (the same distribution NT-Xent trains). contrastive_acc: fraction of
    views whose positive has the largest logit. entropy: mean over views of -sum_k p_k ln p_k, in nats
    (as the official code's contrast_entropy; Table 5's 8.3 at t = 1 is about ln 4096, consistent with
    nats). Both are means over the local views; their mean over processes is the global value.
    """
    _check_inputs(z1, z2, temperature)
    anchors, candidates, offset = _anchors_and_candidates(z1, z2, normalize)
    self_cols, pos_cols = _self_and_positive_columns(z1.shape[0], offset, anchors.device)
    inv_t = 1.0 / temperature
    correct = anchors.new_zeros(())
    entropy = anchors.new_zeros(())
    for start, stop in _row_chunks(anchors.shape[0], candidates.shape[0]):
        logits = _masked_logits(anchors[start:stop] * inv_t, candidates, self_cols[start:stop])   # (c, M)
        correct += (logits.argmax(1) == pos_cols[start:stop]).sum()
        lse = torch.logsumexp(logits, 1, keepdim=True)                                          # (c, 1)
        prob = (logits - lse).exp_()                                                             # (c, M)
        # H = lse - sum_k p_k logit_k; the self column has p = 0 and a -inf logit, so zero it first
        logits.scatter_(1, self_cols[start:stop, None], 0.0)
        entropy += (lse.squeeze(1) - (prob * logits).sum(1)).sum()
        del logits, prob
    rows = anchors.shape[0]
    return {"contrastive_acc": correct / rows, "entropy": entropy / rows}
