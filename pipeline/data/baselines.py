"""Trivial baselines of a task, fitted in ``prepare``: the floor any trained model must clear.

- ``chance``: one class in K, guessed at random;
- ``majority``: always the training split's most common class, scored on the test split;
- ``logistic``: a logistic regression on the flattened inputs, fitted on (at most
  :data:`MAX_FIT_EXAMPLES` of) the training split, scored on the test split.

A stage whose best model does not clear them learned nothing worth comparing
(:mod:`pipeline.paradigms.sanity`). They are cheap: a few seconds even for large datasets.
"""

from __future__ import annotations

import warnings

import numpy as np

MAX_FIT_EXAMPLES = 3000  # the logistic regression's training subsample: keeps prepare fast on large datasets
MAX_ITER = 300


def fit_baselines(X: dict[str, np.ndarray], y: dict[str, np.ndarray], num_classes: int, seed: int) -> dict[str, float]:
    """Test accuracy of each baseline on a task's ``train``/``test`` splits, and the test split's size."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    y_train, y_test = y["train"], y["test"]
    fit = np.arange(len(y_train))
    if len(fit) > MAX_FIT_EXAMPLES:
        fit = np.sort(np.random.default_rng(seed).choice(fit, MAX_FIT_EXAMPLES, replace=False))
    majority = float(np.mean(y_test == np.bincount(y_train, minlength=num_classes).argmax()))
    if len(np.unique(y_train[fit])) < 2:
        logistic = majority
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a few hundred iterations are enough for a floor
            model = LogisticRegression(max_iter=MAX_ITER).fit(_flat(X["train"][fit]), y_train[fit])
        logistic = float(np.mean(model.predict(_flat(X["test"])) == y_test))
    return {"chance": 1.0 / num_classes, "majority": majority, "logistic": logistic, "test_examples": len(y_test)}


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)
