"""The ``active_learning`` params section: query strategies, rounds and budget, pseudo-labels."""

from __future__ import annotations

import typing
from typing import Literal, Optional

from pydantic import Field, field_validator

from pipeline.config.schema import SharedParams, StageSection, once_each, refuse_trainer_keys

# one class each in pipeline.paradigms.active_learning.strategies (a test keeps the two in step)
QueryStrategy = Literal["random", "least_confidence", "margin", "entropy", "bald"]
QUERY_STRATEGIES: tuple[str, ...] = typing.get_args(QueryStrategy)
CONTROL = "random"  # the strategy every other is compared with


class ActiveLearningConfig(StageSection):
    """Rounds of: train on the labelled set, score the unlabelled pool, have the top ``query_size`` labelled."""

    strategies: list[QueryStrategy] = Field(default_factory=lambda: list(QUERY_STRATEGIES), min_length=1)
    query_size: int = Field(20, ge=1)  # examples labelled per round
    rounds: int = Field(15, ge=1)  # queries; the learning curve has rounds + 1 points
    label_budget: Optional[int] = Field(None, ge=1)  # stop once this many examples (seed set included) are labelled
    train_steps: int = Field(300, ge=1)  # gradient steps per round on the labelled set
    warm_start: bool = False  # false: each round retrains from the same start; true: from the last round's weights
    init_from_base: bool = False  # true: start from pretrain's base (new head) instead of random weights
    pool_subsample: Optional[int] = Field(None, ge=1)  # score only this many random pool examples per round (speed)
    mc_samples: int = Field(20, ge=2)  # MC-dropout strategies (bald): stochastic forward passes with dropout on
    cooperative: bool = False  # CEAL: also train each round on confident pool predictions as pseudo-labels
    # cooperative: least predicted probability of a pseudo-label
    pseudo_label_threshold: float = Field(0.99, gt=0, lt=1)
    # al/labels_to_target; null: random's final test accuracy
    target_accuracy: Optional[float] = Field(None, gt=0, le=1)

    @field_validator("strategies")
    @classmethod
    def _control_first(cls, values: list[str]) -> list[str]:
        """Every strategy once; ``random`` always runs, first: the others are measured against it."""
        once_each(values, "strategy")
        return [CONTROL] + [v for v in values if v != CONTROL]

    _steps_not_epochs = refuse_trainer_keys(
        ("max_epochs", "early_stopping_patience"),
        "active_learning",
        "each round trains active_learning.train_steps steps on the labelled set (no validation labels are spent "
        "on early stopping); set active_learning.train_steps",
    )

    def variant(self, strategy: str) -> str:
        """A strategy's run name: ``<strategy>+pseudo`` when cooperative."""
        return f"{strategy}+pseudo" if self.cooperative else strategy


def check_active_learning(params: SharedParams) -> None:
    from pipeline.paradigms.active_learning.strategies import query_strategy  # numpy only: baal loads when ranking

    al = params.active_learning
    sampled = [s for s in al.strategies if query_strategy(s).mc_dropout]
    if sampled and params.model.dropout == 0:
        named = ", ".join(map(repr, sampled))
        raise ValueError(
            f"active_learning.strategies includes {named}, which samples predictions with dropout on, "
            f"but model.dropout = 0; set model.dropout > 0 (e.g. 0.1) or remove {named}"
        )
    seed_size = params.prepare.active_learning.initial_labelled
    if al.label_budget is not None and al.label_budget <= seed_size:
        raise ValueError(
            f"active_learning.label_budget = {al.label_budget}: the seed set already has "
            f"prepare.active_learning.initial_labelled = {seed_size} labels; allowed > {seed_size}"
        )
