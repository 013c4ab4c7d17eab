"""warmup_cosine against the official TF schedule written out in NumPy; scaled_lr; set_lr."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from simclr_core.optim import scaled_lr, set_lr, warmup_cosine
from simclr_core.validation import ConfigError

TOTAL, WARMUP, PEAK = 1000, 100, 4.8


def _official(steps: np.ndarray, total: int, warmup: int, peak: float) -> np.ndarray:
    """model_util.learning_rate_schedule: step / warmup * peak, then tf.train.cosine_decay (alpha = 0)."""
    ramp = steps / warmup * peak if warmup else np.full(steps.shape, peak)
    decay_steps = total - warmup
    cosine = peak * 0.5 * (1 + np.cos(np.pi * np.minimum(steps - warmup, decay_steps) / decay_steps))
    return np.where(steps < warmup, ramp, cosine)


def test_endpoints():
    assert warmup_cosine(0, TOTAL, WARMUP, PEAK) == 0.0
    assert warmup_cosine(WARMUP, TOTAL, WARMUP, PEAK) == pytest.approx(PEAK, rel=1e-15)
    assert warmup_cosine(TOTAL, TOTAL, WARMUP, PEAK) == 0.0
    assert warmup_cosine(TOTAL, TOTAL, WARMUP, PEAK, final_lr=0.01) == 0.01
    assert warmup_cosine(TOTAL - 1, TOTAL, WARMUP, PEAK, final_lr=0.01) > 0.01
    assert warmup_cosine(10 * TOTAL, TOTAL, WARMUP, PEAK, final_lr=0.01) == 0.01  # held after the end
    assert warmup_cosine(WARMUP // 2, TOTAL, WARMUP, PEAK) == pytest.approx(PEAK / 2, rel=1e-15)
    assert warmup_cosine((TOTAL + WARMUP) // 2, TOTAL, WARMUP, PEAK) == pytest.approx(PEAK / 2, rel=1e-12)


def test_up_during_warmup_then_down():
    lrs = np.array([warmup_cosine(s, TOTAL, WARMUP, PEAK) for s in range(TOTAL + 1)])
    assert (np.diff(lrs[: WARMUP + 1]) > 0).all()
    assert (np.diff(lrs[WARMUP:]) < 0).all()
    assert lrs.max() == lrs[WARMUP]


@pytest.mark.parametrize("total, warmup", [(1000, 100), (97, 13), (50, 0), (2, 1)])
def test_matches_official_schedule_at_random_steps(total, warmup):
    steps = np.random.default_rng(total).integers(0, 2 * total, size=200)
    ours = np.array([warmup_cosine(int(s), total, warmup, PEAK) for s in steps])
    np.testing.assert_allclose(ours, _official(steps.astype(np.float64), total, warmup, PEAK), rtol=1e-12,
                               atol=1e-12)


def test_final_lr_rescales_the_cosine():
    for s in (100, 250, 700, 999):
        t = (s - WARMUP) / (TOTAL - WARMUP)
        expected = 0.2 + (PEAK - 0.2) * (1 + math.cos(math.pi * t)) / 2
        assert warmup_cosine(s, TOTAL, WARMUP, PEAK, final_lr=0.2) == pytest.approx(expected, rel=1e-14)


def test_no_warmup_starts_at_peak():
    assert warmup_cosine(0, 10, 0, PEAK) == PEAK
    assert warmup_cosine(10, 10, 0, PEAK) == 0.0


def test_warmup_longer_than_run_ramps_then_stops():
    assert warmup_cosine(5, 10, 20, PEAK) == pytest.approx(PEAK / 4)
    assert warmup_cosine(10, 10, 20, PEAK) == 0.0


@pytest.mark.parametrize("args, bad", [((-1, 10, 2, 1.0), "-1"), ((0, 0, 0, 1.0), "total_steps"),
                                       ((0, 10, -2, 1.0), "warmup_steps")])
def test_bad_steps_raise(args, bad):
    with pytest.raises(ConfigError, match=bad):
        warmup_cosine(*args)


@pytest.mark.parametrize("batch_size, scaling, expected", [
    (256, "linear", 0.3), (4096, "linear", 4.8), (256, "sqrt", 1.2), (4096, "sqrt", 4.8),
])
def test_scaled_lr_paper_constants(batch_size, scaling, expected):
    assert scaled_lr(batch_size, scaling) == pytest.approx(expected, rel=1e-15)


def test_scaled_lr_explicit_base():
    assert scaled_lr(512, "linear", base_lr=1.0) == 2.0
    assert scaled_lr(64, "sqrt", base_lr=0.5) == 4.0


def test_scaled_lr_unknown_scaling_names_value_and_choices():
    with pytest.raises(ConfigError) as err:
        scaled_lr(256, "cubic")
    assert "'cubic'" in str(err.value) and "'linear'" in str(err.value) and "'sqrt'" in str(err.value)


def test_set_lr_writes_every_group():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    opt = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 9.0}],
                          lr=1.0)
    set_lr(opt, 0.125)
    assert [g["lr"] for g in opt.param_groups] == [0.125, 0.125]
