"""Query strategies: which pool examples to label next, each a small class (as baal's heuristics are).

A strategy picks from the model's predicted class probabilities: ``[n, classes]``, or, when it says
``mc_dropout``, ``[n, classes, samples]`` from forward passes with dropout on. ``random`` is the
control. The uncertainty strategies rank with baal's heuristics: ``least_confidence`` (lowest top
probability), ``margin`` (smallest gap between the top two), ``entropy`` (highest predictive entropy)
and ``bald`` (highest mutual information between the prediction and the weights; Gal et al. 2017).

A new strategy is a subclass here with its ``name`` (and baal's ``heuristic``, or its own ``select``),
and its name in ``QueryStrategy`` of :mod:`pipeline.paradigms.active_learning.config`.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from pipeline.paradigms.active_learning.config import CONTROL


class QueryStrategy:
    name: ClassVar[str]
    mc_dropout: ClassVar[bool] = False  # scores stochastic predictions [n, classes, samples], not [n, classes]

    def select(self, probs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """Positions (rows of ``probs``) of the ``k`` examples to label, most informative first."""
        raise NotImplementedError


class Random(QueryStrategy):
    name = CONTROL

    def select(self, probs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(probs), size=k, replace=False)


class Uncertainty(QueryStrategy):
    """The most uncertain first, by one of baal's heuristics (imported when first used: baal loads torch)."""

    heuristic: ClassVar[str]  # a class of baal.active.heuristics

    def select(self, probs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # baal warns, then ranks last, on scores that are not finite
            ranks = _baal(self.heuristic).get_ranks(probs)[0]
        return np.asarray(ranks[:k], dtype=np.int64)


class LeastConfidence(Uncertainty):
    name, heuristic = "least_confidence", "Certainty"


class Margin(Uncertainty):
    name, heuristic = "margin", "Margin"


class Entropy(Uncertainty):
    name, heuristic = "entropy", "Entropy"


class Bald(Uncertainty):
    name, heuristic, mc_dropout = "bald", "BALD", True


STRATEGIES: dict[str, type[QueryStrategy]] = {s.name: s for s in (Random, LeastConfidence, Margin, Entropy, Bald)}


def query_strategy(name: str) -> QueryStrategy:
    return STRATEGIES[name]()


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each example's mean predicted distribution (nats): one uncertainty measure for every strategy."""
    return np.asarray(_baal("Entropy").get_uncertainties(probs), dtype=np.float64)


def _baal(heuristic: str):
    from baal.active import heuristics

    return getattr(heuristics, heuristic)()
