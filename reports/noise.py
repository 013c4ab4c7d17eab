"""Seed noise: when a difference between our cells is real, and when it is no larger than the noise.

The rule, the only place it is stated (reports/claims.py applies it to every conclusion of the paper):

    A claim is a set of margins, each a linear combination of cell means sum_i w_i * mean_i that is positive
    when the claim holds (best pair minus best other pair, a slope across strengths, ...).
    s   = pooled within-cell standard deviation over the experiment's cells at one scale:
          sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1)) over the cells with n_i >= 2 seed runs;
    SE  = s * sqrt(sum_i w_i^2 / n_i), the standard error of the margin (cells independent, equal variance);
    a margin is WITHIN NOISE when |margin| <= 2 * SE, and a margin of exactly 0 is always within noise.
    The claim HOLDS when every margin is positive beyond the noise, FAILS when any margin is negative beyond
    it, and is WITHIN NOISE otherwise.
    Without a pooled std (one seed per cell everywhere) a nonzero margin decides by its sign alone, and the
    verdict says "1 seed: noise not measured".

2 x SE is a rule of thumb (about a 95% normal interval), not a significance test: with few seeds the t
quantile is larger, and a margin taken between the best of several cells is biased upwards by the choice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# A margin no larger than this many standard errors is within noise.
NOISE_SES = 2.0
# Margins closer to 0 than this are exact ties (means of the same numbers summed in another order).
TIE_TOLERANCE = 1e-9

OUTCOMES = ("holds", "fails", "within noise", "undecided")
ONE_SEED = "1 seed: noise not measured"


@dataclass(frozen=True)
class Noise:
    """The pooled within-cell std of an experiment's cells at one scale and what it rests on."""
    std: float          # NaN when no cell has two runs
    cells: int          # cells with >= 2 runs that it pools
    dof: int            # sum of (n_i - 1) over those cells

    @property
    def measured(self) -> bool:
        return not math.isnan(self.std)

    def describe(self) -> str:
        if not self.measured:
            return ONE_SEED
        return (f"pooled within-cell std {self.std:.2f} over {self.cells} cell(s) ({self.dof} degree(s) of "
                f"freedom); within noise means |margin| <= {NOISE_SES:g} x SE")


def pooled_noise(stds: Sequence[float], runs: Sequence[int]) -> Noise:
    """The pooled within-cell std over cells with 2 or more runs (`stds`: each cell's sample std)."""
    total, dof, cells = 0.0, 0, 0
    for std, n in zip(stds, runs):
        n = int(n) if n == n else 0      # NaN run counts (cells without runs) count as 0
        if n >= 2 and not math.isnan(float(std)):
            total += (n - 1) * float(std) ** 2
            dof += n - 1
            cells += 1
    return Noise(math.sqrt(total / dof) if dof else math.nan, cells, dof)


@dataclass(frozen=True)
class Margin:
    """One inequality of a claim: `value` > 0 when it goes the claim's way; SE = pooled std x se_factor."""
    value: float
    se_factor: float        # sqrt(sum_i w_i^2 / n_i)
    label: str = ""

    def outcome(self, noise: Noise | None) -> str:
        if abs(self.value) <= TIE_TOLERANCE:
            return "within noise"
        if noise is not None and noise.measured and abs(self.value) <= NOISE_SES * noise.std * self.se_factor:
            return "within noise"
        return "holds" if self.value > 0 else "fails"


def judge(margins: Sequence[Margin], noise: Noise | None) -> tuple[str, str]:
    """(outcome, note) of a claim made of `margins`; `noise` None: numbers without seeds (the paper's)."""
    outcomes = [m.outcome(noise) for m in margins]
    if not outcomes:
        return "undecided", ""
    outcome = "fails" if "fails" in outcomes else "holds" if set(outcomes) == {"holds"} else "within noise"
    undecided_by = [m for m, o in zip(margins, outcomes) if o == "within noise"]
    if outcome == "within noise" and all(abs(m.value) <= TIE_TOLERANCE for m in undecided_by):
        return outcome, "exact tie"
    if noise is not None and not noise.measured and outcome in ("holds", "fails"):
        return outcome, ONE_SEED
    return outcome, ""


def margin_text(margin: Margin, noise: Noise | None) -> str:
    """"+1.20 (2 SE = 0.80)" with noise, "+1.20" without."""
    text = f"{margin.label + ' ' if margin.label else ''}{margin.value:+.2f}"
    if noise is not None and noise.measured:
        text += f" ({NOISE_SES:g} SE = {NOISE_SES * noise.std * margin.se_factor:.2f})"
    return text
