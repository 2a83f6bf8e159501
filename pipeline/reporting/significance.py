"""Whether one variant beats another or the two tie within noise: what a headline may call a win.

A test split of a few hundred examples puts a standard error of about 0.02 on an accuracy, so
variants a hundredth apart are not ranked by their numbers alone. Seeds pair by seed value (every
seed tests on the same split, so a seed's two runs answer the same examples):

- **1 seed**: exact McNemar test on the test examples the two runs answer differently (a binomial
  test of the discordant pairs); where a run logged no test predictions, the two-proportion
  standard error of the accuracy difference (a win needs ``|Δ| > 2·SE``); where neither says how
  many examples it tested (a score such as the area under a learning curve), no test: ranking only.
- **2 seeds**: a win needs that same test to find the same winner on each seed (an intersection-union
  test: valid at the level of each test without assuming the seeds independent, which they are not,
  as both answer the same examples). A score without examples gets the paired t-test below, which
  with one degree of freedom calls a win only for a mean gap about 9 times the std of the gaps: the
  weaker rule "both seeds agree and the mean gap exceeds the std of the gaps" would call one for
  noise alone about 4 times in 10.
- **3 seeds or more**: a paired t-test over seeds on the scores.

Every test is two-sided at :data:`ALPHA`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.stats import binomtest, ttest_rel

ALPHA = 0.05
Answers = tuple[np.ndarray, np.ndarray]  # every test example's true and predicted class


@dataclass(frozen=True)
class Scores:
    """One variant's score on one question, per seed, and where logged the answers behind it."""

    value: dict[int, float]  # seed -> score (accuracy, area under a curve)
    answers: dict[int, Optional[Answers]] = field(default_factory=dict)  # seed -> test answers, None where not logged

    def mean(self) -> float:
        return float(np.mean(list(self.value.values()))) if self.value else math.nan


@dataclass(frozen=True)
class Verdict:
    """``a`` against ``b``: the mean gap ``a - b`` over paired seeds, and whether it is beyond noise."""

    gap: float
    significant: bool
    test: str  # "McNemar", "2·SE", "paired t-test", "seeds" (2 seeds that disagree) or "none" (not tested)
    seeds: int
    p: float = math.nan
    why: str = ""  # what settled it, in words (e.g. "seeds disagree")

    @property
    def a_wins(self) -> bool:
        return self.significant and self.gap > 0

    @property
    def b_wins(self) -> bool:
        return self.significant and self.gap < 0

    def detail(self) -> str:
        """What the test found, with its p-value where it has one: ``McNemar p = 0.41``."""
        if math.isnan(self.p):
            return self.why
        return f"{self.test} p = {self.p:.2g}" + (f", {self.why}" if self.why else "")

    def rule(self) -> str:
        """The threshold it met or missed, for a headline: ``McNemar p ≥ 0.05``."""
        if math.isnan(self.p):
            return self.why
        sign = "<" if self.p < ALPHA else "≥"
        return f"{self.test} p {sign} {ALPHA:g}" + (f", {self.why}" if self.why else "")


def compare(a: Scores, b: Scores) -> Verdict:
    """``a`` against ``b`` over the seeds both ran (see the module's rules)."""
    seeds = sorted(set(a.value) & set(b.value))
    if not seeds:
        return Verdict(a.mean() - b.mean(), False, "none", 0, why="no seed in common: not tested")
    gaps = np.array([a.value[s] - b.value[s] for s in seeds])
    gap = float(gaps.mean())
    n = _examples(a, seeds) or _examples(b, seeds)
    if len(seeds) >= 3 or (len(seeds) == 2 and not n):
        return _t_test(gaps)
    if len(seeds) == 2 and not (np.all(gaps > 0) or np.all(gaps < 0)):
        return Verdict(gap, False, "seeds", 2, why="seeds disagree")
    if not n:
        return Verdict(gap, False, "none", 1, why="ranking only, not tested")
    each = [_one_seed(a.value[s], b.value[s], a.answers.get(s), b.answers.get(s), n) for s in seeds]
    significant = all(v.significant for v in each)  # in the same direction: the seeds agree (checked above)
    ps = [v.p for v in each]
    p = math.nan if any(math.isnan(x) for x in ps) else max(ps)
    why = [v.why for v in each if v.why] + (["on the weaker seed"] if len(each) > 1 and not math.isnan(p) else [])
    test = "/".join(dict.fromkeys(v.test for v in each))
    return Verdict(gap, significant, test, len(seeds), p, "; ".join(dict.fromkeys(why)))


def _one_seed(a: float, b: float, a_answers: Optional[Answers], b_answers: Optional[Answers], n: int) -> Verdict:
    """Exact McNemar on the examples the two runs answer differently, else ``|Δ| > 2·SE`` on ``n`` examples."""
    pairs = _paired(a_answers, b_answers)
    if pairs is not None:
        a_right, b_right = pairs
        ahead, behind = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
        p = float(binomtest(ahead, ahead + behind, 0.5).pvalue) if ahead + behind else 1.0
        return Verdict(a - b, p < ALPHA, "McNemar", 1, p)
    se = math.sqrt((a * (1 - a) + b * (1 - b)) / n)
    beyond = abs(a - b) > 2 * se if se > 0 else a != b
    why = f"|Δ| {'>' if beyond else '≤'} 2·SE ({2 * se:.3f}; no test predictions)"
    return Verdict(a - b, beyond, "2·SE", 1, why=why)


def _t_test(gaps: np.ndarray) -> Verdict:
    if np.allclose(gaps, gaps[0]):  # no spread over seeds: t is undefined; a constant non-zero gap is no noise
        p = 1.0 if np.allclose(gaps, 0.0) else 0.0  # a gap of rounding (0.1 + 0.2 against 0.3) is none
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(ttest_rel(gaps, np.zeros_like(gaps)).pvalue)
    return Verdict(float(gaps.mean()), p < ALPHA, "paired t-test", len(gaps), p=p)


def _paired(a: Optional[Answers], b: Optional[Answers]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Per test example, whether each run was right; None unless both answered the very same examples."""
    if a is None or b is None or len(a[0]) != len(b[0]) or not np.array_equal(a[0], b[0]):
        return None
    return a[0] == a[1], b[0] == b[1]


def _examples(scores: Scores, seeds: list[int]) -> int:
    """How many test examples the scores came from (0: not known)."""
    return next((len(answers[0]) for s in seeds if (answers := scores.answers.get(s)) is not None), 0)


@dataclass(frozen=True)
class Standing:
    """The best of several variants and each other's verdict against it."""

    best: str
    against: dict[str, Verdict]  # every other variant -> best against it
    means: dict[str, float]  # every variant's mean score

    @property
    def tied(self) -> list[str]:
        """The variants not significantly worse than the best, best first, then by mean score."""
        others = sorted((name for name, v in self.against.items() if not v.a_wins), key=lambda n: -self.means[n])
        return [self.best, *others]

    @property
    def clear(self) -> bool:
        """The best beats every other (vacuously so when alone)."""
        return len(self.tied) == 1


def standing(scores: dict[str, Scores]) -> Standing:
    """The variant with the highest mean score, then each other against it."""
    means = {name: s.mean() for name, s in scores.items()}
    best = max(means, key=lambda name: -math.inf if math.isnan(means[name]) else means[name])
    return Standing(best, {name: compare(scores[best], s) for name, s in scores.items() if name != best}, means)
