"""Losses against float64 textbook transcriptions of Eq. (1) / Algorithm 1 and Table 2, written as explicit loops.

The references below share no code with simclr_core.losses: they loop over views i and candidates k with
scalar torch ops in float64 (so autograd through them gives the textbook gradient) and follow the
paper's formulas literally, exp and log included.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import simclr_core.losses as losses
from simclr_core.config import LossConfig, RunConfig
from simclr_core.losses import LOSSES, compute_loss, contrastive_stats, nt_xent
from simclr_core.validation import ConfigError


# ---- textbook references ------------------------------------------------------------------------
def _views(z1, z2):
    """The 2N views as a list; view i and view i + N are the two augmentations of image i."""
    return [z1[i] for i in range(z1.shape[0])] + [z2[i] for i in range(z2.shape[0])]


def _sim(u, v, normalize):
    return (u @ v) / (u.norm() * v.norm()) if normalize else u @ v


def textbook_nt_xent(z1, z2, temperature, normalize, decoupled=False):
    """Algorithm 1: L = 1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)], l from Eq. (1). With `decoupled`, Yeh et al.
    (2022), Eq. 6: the positive j is also left out of the denominator."""
    views, n = _views(z1, z2), z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        excluded = (i, j) if decoupled else (i,)
        denominator = sum(torch.exp(_sim(views[i], views[k], normalize) / temperature)
                          for k in range(2 * n) if k not in excluded)
        total = total - torch.log(torch.exp(_sim(views[i], views[j], normalize) / temperature) / denominator)
    return total / (2 * n)


def _triplets(z1, z2, normalize, semi_hard):
    """(s+, s-) per triplet: anchors are all 2N views, negatives the other view of the other images
    (Appendix B.10); with semi_hard one triplet per anchor, mined by explicit comparison."""
    views, n = _views(z1, z2), z1.shape[0]
    out = []
    for i in range(2 * n):
        image, other_view_start = i % n, (n if i < n else 0)
        s_pos = _sim(views[i], views[other_view_start + image], normalize)
        s_negs = [_sim(views[i], views[other_view_start + j], normalize) for j in range(n) if j != image]
        if not semi_hard:
            out += [(s_pos, s) for s in s_negs]
            continue
        farther = [s for s in s_negs if s.item() < s_pos.item()]
        if farther:
            chosen = max(farther, key=lambda s: s.item())      # the closest of the farther negatives
        else:
            chosen = min(s_negs, key=lambda s: s.item())       # fallback: the least similar negative
        out.append((s_pos, chosen))
    return out


def textbook_nt_logistic(z1, z2, temperature, normalize, semi_hard):
    """Table 2: objective log sigma(u.v+/t) + log sigma(-u.v-/t), sigma(x) = 1 / (1 + exp(-x)); mean of -objective."""
    sigma = lambda x: 1.0 / (1.0 + torch.exp(-x))  # noqa: E731
    terms = [-(torch.log(sigma(sp / temperature)) + torch.log(sigma(-sn / temperature)))
             for sp, sn in _triplets(z1, z2, normalize, semi_hard)]
    return sum(terms) / len(terms)


def textbook_margin_triplet(z1, z2, margin, normalize, semi_hard):
    """Table 2: objective -max(u.v- - u.v+ + m, 0); mean of -objective."""
    terms = [torch.clamp(sn - sp + margin, min=0.0) for sp, sn in _triplets(z1, z2, normalize, semi_hard)]
    return sum(terms) / len(terms)


def _reference(kind, z1, z2, temperature, normalize, semi_hard, margin=0.4):
    if kind == "nt_xent":
        return textbook_nt_xent(z1, z2, temperature, normalize)
    if kind == "dcl":
        return textbook_nt_xent(z1, z2, temperature, normalize, decoupled=True)
    if kind == "nt_logistic":
        return textbook_nt_logistic(z1, z2, temperature, normalize, semi_hard)
    return textbook_margin_triplet(z1, z2, margin, normalize, semi_hard)


def _inputs(n=5, d=7, seed=0, dtype=torch.float64, scale=1.0, antipodal_first=False):
    """Random (n, d) views; with `antipodal_first`, image 0's second view is nearly minus its first, so its
    positive is less similar than every negative (the semi-hard fallback) while other anchors mine normally."""
    g = torch.Generator().manual_seed(seed)
    z1, z2 = (torch.randn(n, d, generator=g, dtype=dtype) * scale for _ in range(2))
    if antipodal_first:
        z2[0] = -z1[0] + 0.01 * z2[0]
    return [z1.requires_grad_(), z2.requires_grad_()]


def _assert_rel(actual, expected, tol=1e-6):
    err = (actual - expected).abs().max() / expected.abs().max().clamp_min(1e-300)
    assert err <= tol, f"relative error {err:.3g} > {tol}"


def _use_ntxent_path(monkeypatch, path):
    """Run NT-Xent through one of its memory paths: "kept" (the whole exponentiated matrix kept for
    backward) or "recomputed" (row chunks of 2-3 rows, recomputed in backward)."""
    if path == "recomputed":
        monkeypatch.setattr(losses, "_KEEP_ELEMENTS", 0)
        monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", 25)


# ---- value and gradient vs the textbook ----------------------------------------------------------
CASES = [
    ("nt_xent", False), ("dcl", False), ("nt_logistic", False), ("nt_logistic", True),
    ("margin_triplet", False), ("margin_triplet", True),
]
# (kind, semi_hard, NT-Xent memory path); dcl runs through NT-Xent's code, so it takes both paths too
PATH_CASES = ([("nt_xent", False, "kept"), ("nt_xent", False, "recomputed"), ("dcl", False, "kept"),
               ("dcl", False, "recomputed")] + [c + ("kept",) for c in CASES[2:]])


@pytest.mark.parametrize("kind,semi_hard,path", PATH_CASES)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("temperature", [0.5, 0.1, 0.01])
def test_matches_textbook_value_and_gradient(kind, semi_hard, path, normalize, temperature, monkeypatch):
    _use_ntxent_path(monkeypatch, path)
    # small raw vectors keep the unnormalised textbook's exp finite at t = 0.01
    z1, z2 = _inputs(scale=1.0 if normalize else 0.3, antipodal_first=True)
    ours = LOSSES[kind](z1, z2, temperature=temperature, normalize=normalize, semi_hard=semi_hard)
    ref = _reference(kind, z1, z2, temperature, normalize, semi_hard)
    assert ours.dim() == 0 and ours.dtype == torch.float64
    _assert_rel(ours.detach(), ref.detach())
    g_ours = torch.autograd.grad(ours, (z1, z2))
    g_ref = torch.autograd.grad(ref, (z1, z2))
    for a, b in zip(g_ours, g_ref):
        assert torch.isfinite(a).all()
        _assert_rel(a, b)


@pytest.mark.parametrize("kind,semi_hard,path", PATH_CASES)
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck(kind, semi_hard, path, normalize, monkeypatch):
    _use_ntxent_path(monkeypatch, path)
    z1, z2 = _inputs(n=4, d=3, seed=7)
    fn = lambda a, b: LOSSES[kind](a, b, temperature=0.2, normalize=normalize, semi_hard=semi_hard)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (z1, z2))


@pytest.mark.parametrize("normalize", [True, False])
def test_semi_hard_inputs_exercise_both_mining_branches(normalize):
    """The inputs of the textbook test hold anchors with a negative farther than the positive and anchors
    without one (fallback), so both branches of the mining are compared."""
    z1, z2 = _inputs(scale=1.0 if normalize else 0.3, antipodal_first=True)
    with torch.no_grad():
        found = {chosen.item() < s_pos.item() for s_pos, chosen in _triplets(z1, z2, normalize, True)}
    assert found == {True, False}


def test_official_tf_code_is_twice_the_paper_value():
    """objective.py returns loss_a + loss_b (two directional means); the paper's mean over 2N is half of it."""
    z1, z2 = _inputs()
    h1, h2, t, n = F.normalize(z1, dim=1), F.normalize(z2, dim=1), 0.5, z1.shape[0]
    mask = torch.eye(n, dtype=torch.float64) * 1e9
    labels = torch.arange(n)
    loss_a = F.cross_entropy(torch.cat([h1 @ h2.T / t, h1 @ h1.T / t - mask], 1), labels)
    loss_b = F.cross_entropy(torch.cat([h2 @ h1.T / t, h2 @ h2.T / t - mask], 1), labels)
    _assert_rel(loss_a + loss_b, 2 * nt_xent(z1, z2, temperature=t))


# ---- numerics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,semi_hard,path", PATH_CASES)
def test_float32_low_temperature_large_logits_stay_finite(kind, semi_hard, path, monkeypatch):
    _use_ntxent_path(monkeypatch, path)
    """Raw dot products of size ~50 at t = 0.01 give logits ~5000: exp overflows float32, log-space does not."""
    z1, z2 = _inputs(n=6, d=16, seed=1, dtype=torch.float32, scale=2.0)
    ours = LOSSES[kind](z1, z2, temperature=0.01, normalize=False, semi_hard=semi_hard)
    assert torch.isfinite(ours)
    grads = torch.autograd.grad(ours, (z1, z2))
    assert all(torch.isfinite(g).all() for g in grads)
    z1d, z2d = (z.detach().double().requires_grad_() for z in (z1, z2))
    ref = LOSSES[kind](z1d, z2d, temperature=0.01, normalize=False, semi_hard=semi_hard)
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-4, atol=1e-3)
    if kind == "nt_xent":   # the textbook exp in float32 overflows on these inputs
        z = torch.cat([z1, z2]).detach()
        assert not torch.isfinite(torch.exp(z @ z.T / 0.01)).all()


def test_half_precision_inputs_compute_in_float32():
    z1, z2 = _inputs(dtype=torch.float32)
    expected = nt_xent(z1, z2)
    lin = torch.nn.Linear(7, 7).bfloat16()
    with torch.no_grad():
        lin.weight.copy_(torch.eye(7))
        lin.bias.zero_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = nt_xent(lin(z1.bfloat16()), lin(z2.bfloat16()))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)


def test_loss_is_invariant_to_the_order_of_images_and_views():
    z1, z2 = _inputs()
    perm = torch.tensor([3, 0, 4, 1, 2])
    for kind in LOSSES:
        base = LOSSES[kind](z1, z2)
        _assert_rel(LOSSES[kind](z1[perm], z2[perm]), base, 1e-12)
        _assert_rel(LOSSES[kind](z2, z1), base, 1e-12)


# ---- dispatch and validation ---------------------------------------------------------------------
def test_compute_loss_dispatches_with_every_knob():
    z1, z2 = _inputs()
    for kind, semi_hard in CASES:
        cfg = LossConfig(kind=kind, temperature=0.3, normalize=False, semi_hard=semi_hard, margin=0.8)
        expected = LOSSES[kind](z1, z2, temperature=0.3, normalize=False, semi_hard=semi_hard, margin=0.8)
        assert torch.equal(compute_loss(cfg, z1, z2), expected)
    assert set(LOSSES) == {"nt_xent", "dcl", "nt_logistic", "margin_triplet"}


def test_bad_configs_raise_config_error_naming_the_choices():
    z1, z2 = _inputs()
    with pytest.raises(ConfigError, match="'nt_xent', 'nt_logistic', 'margin_triplet'"):
        compute_loss(LossConfig(kind="infonce"), z1, z2)
    for temperature in (0.0, -0.5):
        with pytest.raises(ConfigError, match="loss.temperature"):
            compute_loss(LossConfig(temperature=temperature), z1, z2)
    for kind in ("nt_xent", "dcl"):
        with pytest.raises(ConfigError, match="semi_hard"):
            compute_loss(LossConfig(kind=kind, semi_hard=True), z1, z2)
        with pytest.raises(ConfigError, match="semi_hard"):
            RunConfig().with_overrides({"loss.kind": kind, "loss.semi_hard": True}).validate()
    with pytest.raises(ValueError, match="at least 2 images.*got 1"):
        compute_loss(LossConfig(kind="dcl"), z1[:1], z2[:1])
    with pytest.raises(ConfigError, match="loss.margin"):
        compute_loss(LossConfig(kind="margin_triplet", margin=-0.1), z1, z2)
    with pytest.raises(ValueError, match="z1 and z2"):
        nt_xent(z1, z2[:3])


# ---- Table 5 diagnostics -------------------------------------------------------------------------
def _entropy(logits):
    p = [math.exp(x) for x in logits]
    p = [x / sum(p) for x in p]
    return -sum(x * math.log(x) for x in p)


def test_contrastive_stats_on_hand_made_views():
    e1, e2, e3 = torch.eye(3, dtype=torch.float64)
    # every view's positive is its unique most similar other view: acc 1; each row's logits are {0, 1, 0}
    s = contrastive_stats(torch.stack([e1, e2]), torch.stack([e1, e2]), temperature=1.0)
    assert s["contrastive_acc"].item() == 1.0
    assert s["entropy"].item() == pytest.approx(_entropy([0, 1, 0]), rel=1e-12)
    # swapped positives: every view's most similar other view is a negative
    s = contrastive_stats(torch.stack([e1, e2]), torch.stack([e2, e1]), temperature=1.0)
    assert s["contrastive_acc"].item() == 0.0
    # z1 = [e1, e2], z2 = [e1, -e2]: the e1 views are right (logits {0, 1, 0}); the e2 / -e2 views see
    # their positive at similarity -1 below two zeros (logits {0, 0, -1}): acc 1/2
    s = contrastive_stats(torch.stack([e1, e2]), torch.stack([e1, -e2]), temperature=1.0)
    assert s["contrastive_acc"].item() == 0.5
    expected = (_entropy([0, 1, 0]) + _entropy([0, 0, -1])) / 2
    assert s["entropy"].item() == pytest.approx(expected, rel=1e-12)
    # identical views: uniform over the 2N - 1 others, entropy ln(2N - 1) in nats
    z = (e1 + e3).repeat(4, 1)
    assert contrastive_stats(z, z, temperature=0.1)["entropy"].item() == pytest.approx(math.log(7), rel=1e-12)


@pytest.mark.parametrize("path", ["kept", "recomputed"])
def test_contrastive_stats_match_loops_and_carry_no_grad(path, monkeypatch):
    _use_ntxent_path(monkeypatch, path)   # the stats use the same row chunks
    z1, z2 = _inputs(seed=4)
    stats = contrastive_stats(z1, z2, temperature=0.2, normalize=True)
    assert not any(v.requires_grad for v in stats.values())
    views, n = _views(z1.detach(), z2.detach()), z1.shape[0]
    correct, entropy = 0, 0.0
    for i in range(2 * n):
        others = [k for k in range(2 * n) if k != i]
        logits = [(_sim(views[i], views[k], True) / 0.2).item() for k in others]
        correct += others[max(range(len(others)), key=logits.__getitem__)] == (i + n) % (2 * n)
        entropy += _entropy(logits)
    assert stats["contrastive_acc"].item() == pytest.approx(correct / (2 * n))
    assert stats["entropy"].item() == pytest.approx(entropy / (2 * n), rel=1e-10)
