"""One active-learning round, and the simulated loop of rounds with the held-out labels as the oracle.

A round: train on the labelled set (plus, in the co-operative variant, this round's
pseudo-labels), evaluate on the validation and test splits, score the pool (or a random
subsample of it), pick the query and have it labelled. The human loop
(:mod:`pipeline.paradigms.active_learning.annotate`) runs the same steps with a person as the oracle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from pipeline.data.prepared import TaskData
from pipeline.paradigms.active_learning.config import ActiveLearningConfig
from pipeline.paradigms.active_learning.labels import LabelState
from pipeline.paradigms.active_learning.learner import Learner
from pipeline.paradigms.active_learning.strategies import QueryStrategy, predictive_entropy, query_strategy
from pipeline.seeding import rng_for
from pipeline.training.in_memory import TrainingPass
from pipeline.training.scores import classification_scores

Row = dict[str, float]


@dataclass(frozen=True)
class Query:
    ids: np.ndarray  # the examples to label, most informative first
    scored: np.ndarray  # the pool examples the model scored this round
    probs: np.ndarray  # their predicted class probabilities [n, classes] (mean over dropout samples for bald)
    pool_uncertainty: float  # mean predictive entropy over the scored pool
    query_uncertainty: float  # mean predictive entropy of the query


@dataclass(frozen=True)
class PseudoLabels:
    """Confident predictions on the pool taken as labels for one round's training (CEAL, Wang et al. 2016)."""

    ids: np.ndarray
    labels: np.ndarray
    accuracy: Optional[float]  # share that match the true labels, when the oracle knows them

    @classmethod
    def none(cls) -> "PseudoLabels":
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), None)


def train_round(
    learner: Learner, X_train: torch.Tensor, state: LabelState, pseudo: PseudoLabels, generator: torch.Generator
) -> TrainingPass:
    """Train on the labelled examples and the round's pseudo-labels (``X_train`` is on the learner's device)."""
    ids = np.concatenate([state.ids, pseudo.ids])
    labels = np.concatenate([state.labels, pseudo.labels])
    take = torch.from_numpy(ids).to(X_train.device)
    return learner.fit(X_train[take], torch.from_numpy(labels).to(X_train.device), generator)


def evaluate(learner: Learner, data: TaskData, X_eval: dict[str, torch.Tensor]) -> Row:
    """``val/acc``, ``val/loss``, ``test/acc``, ``test/loss`` and ``test/f1_macro`` of the current model."""
    row = {f"val/{k}": v for k, v in classification_scores(learner.predict(X_eval["val"]), data.y["val"]).items()}
    row |= {
        f"test/{k}": v
        for k, v in classification_scores(learner.predict(X_eval["test"]), data.y["test"], data.num_classes).items()
    }
    return row


def query(
    learner: Learner,
    strategy: QueryStrategy,
    X_train: torch.Tensor,
    state: LabelState,
    size: int,
    cfg: ActiveLearningConfig,
    rng: np.random.Generator,
) -> Query:
    """Score the pool (a random ``pool_subsample`` of it, if set) and pick ``size`` examples to label."""
    scored = state.pool
    if cfg.pool_subsample is not None and cfg.pool_subsample < len(scored):
        scored = np.sort(rng.choice(scored, size=cfg.pool_subsample, replace=False))
    X = X_train[torch.from_numpy(scored).to(X_train.device)]
    if strategy.mc_dropout:
        samples = learner.mc_dropout_probabilities(X, cfg.mc_samples)
        probs = samples.mean(axis=-1)
    else:
        samples = probs = learner.probabilities(X)
    picked = strategy.select(samples, min(size, len(scored)), rng)
    entropy = predictive_entropy(probs)
    return Query(scored[picked], scored, probs, float(entropy.mean()), float(entropy[picked].mean()))


def pseudo_label(asked: Query, threshold: float, truth: Optional[np.ndarray]) -> PseudoLabels:
    """Scored pool examples not in the query whose top predicted probability is at least ``threshold``."""
    confident = (asked.probs.max(axis=1) >= threshold) & ~np.isin(asked.scored, asked.ids)
    ids, labels = asked.scored[confident], asked.probs[confident].argmax(axis=1)
    accuracy = float((truth[ids] == labels).mean()) if truth is not None and len(ids) else None
    return PseudoLabels(ids, labels, accuracy)


def query_size(state: LabelState, cfg: ActiveLearningConfig) -> int:
    """How many to label next: ``query_size``, less if the pool or the label budget runs out."""
    room = len(state.pool) if cfg.label_budget is None else min(len(state.pool), cfg.label_budget - len(state))
    return max(0, min(cfg.query_size, room))


@dataclass
class Simulation:
    state: LabelState  # where the run ended
    rows: list[Row]  # one per round: labels used, scores, pool uncertainty, pseudo-labels
    queries: list[np.ndarray]  # the ids labelled in each round, in order
    train_seconds: float
    samples_trained: int


def simulate(
    learner: Learner,
    data: TaskData,
    state: LabelState,
    strategy: str,
    cfg: ActiveLearningConfig,
    seed: int,
    on_round: Callable[[Row], None] = lambda row: None,
) -> Simulation:
    """Up to ``cfg.rounds`` queries answered by the oracle (the training split's true labels).

    Training shuffles draw from one stream every strategy shares, so all strategies train the
    same first model on the seed set; queries (random picks, pool subsamples) from the strategy's own.
    """
    rng, train_rng = rng_for(seed, f"active_learning/{strategy}/queries"), rng_for(seed, "active_learning/training")
    picker = query_strategy(strategy)
    X_train = torch.from_numpy(data.X["train"]).to(learner.device)
    X_eval = {split: torch.from_numpy(data.X[split]) for split in ("val", "test")}
    truth = data.y["train"]
    pseudo = PseudoLabels.none()
    rows, queries, seconds, samples = [], [], 0.0, 0
    for round_ in range(cfg.rounds + 1):
        started = time.perf_counter()
        done = train_round(
            learner, X_train, state, pseudo, torch.Generator().manual_seed(int(train_rng.integers(2**62)))
        )
        seconds += done.seconds
        samples += learner.steps * min(learner.batch_size, len(state) + len(pseudo.ids))
        row = {"round": round_, "labels": len(state), "train/loss": done.loss, **evaluate(learner, data, X_eval)}
        row |= {"al/pseudo_labels": len(pseudo.ids)} | (
            {"al/pseudo_label_acc": pseudo.accuracy} if pseudo.accuracy is not None else {}
        )
        size = query_size(state, cfg) if round_ < cfg.rounds else 0
        if size:
            asked = query(learner, picker, X_train, state, size, cfg, rng)
            state = state.add(asked.ids, truth[asked.ids])
            queries.append(asked.ids)
            row |= {"al/pool_uncertainty": asked.pool_uncertainty, "al/query_uncertainty": asked.query_uncertainty}
            pseudo = pseudo_label(asked, cfg.pseudo_label_threshold, truth) if cfg.cooperative else pseudo
        row["time/round_seconds"] = time.perf_counter() - started
        rows.append(row)
        on_round(row)
        if not size:
            break
    return Simulation(state, rows, queries, seconds, samples)
