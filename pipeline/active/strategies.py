"""Query strategies: which pool examples to label next.

``random`` is the control. The uncertainty strategies rank the pool with baal's heuristics
on the model's predicted class probabilities: ``least_confidence`` (lowest top probability),
``margin`` (smallest gap between the top two), ``entropy`` (highest predictive entropy) and
``bald`` (highest mutual information between the prediction and the weights, estimated from
forward passes with dropout on; Gal et al. 2017).
"""

from __future__ import annotations

import warnings

import numpy as np
from baal.active.heuristics import BALD, Certainty, Entropy, Margin

from pipeline.config.schema import CONTROL

HEURISTICS = {"least_confidence": Certainty, "margin": Margin, "entropy": Entropy, "bald": BALD}


def needs_mc_dropout(strategy: str) -> bool:
    """Whether the strategy scores stochastic predictions ``[n, classes, samples]`` rather than ``[n, classes]``."""
    return strategy == "bald"


def select(strategy: str, probs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (rows of ``probs``) of the ``k`` examples to label, most informative first."""
    if strategy == CONTROL:
        return rng.choice(len(probs), size=k, replace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # baal warns, then ranks last, on scores that are not finite
        ranks = HEURISTICS[strategy]().get_ranks(probs)[0]
    return np.asarray(ranks[:k], dtype=np.int64)


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each example's mean predicted distribution (nats): one uncertainty measure for every strategy."""
    return np.asarray(Entropy().get_uncertainties(probs), dtype=np.float64)
