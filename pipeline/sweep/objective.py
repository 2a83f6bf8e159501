"""One trial: the stage run whole on the trial's params, in the trial's own output folder, scored
on a validation metric (never the test split).

The value is the metric's mean over the stage's runs that log it (every strategy of finetune,
every partition × strategy of federated, and every seed with ``repeats`` > 1); narrow a sweep
to one variant with ``fixed``, e.g. ``finetune.strategies: [lora]``. Fits through the Lightning
runner report the per-epoch validation metric to the trial and stop when the pruner gives up on it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import lightning.pytorch as pl
import optuna

from pipeline.paradigms import paradigm
from pipeline.paradigms.repeats import StageRuns, over_seeds
from pipeline.params import Params
from pipeline.paths import StagePaths
from pipeline.training.runner import FIT_CALLBACKS

FIT_STEPS = 10_000  # report steps set aside per fit: more than any fit's epochs


def run_trial(stage: str, params: Params, metric: str, out_dir: Path) -> tuple[float, StageRuns]:
    """The stage whole (over its seeds), reading the project's inputs, writing its models and plots under
    ``out_dir``."""
    paths = StagePaths.of(stage).writing_to(out_dir)
    run_stage = paradigm(stage).run.load()
    runs = over_seeds(lambda seeded: run_stage(seeded, paths), params)
    values = [entry[metric] for entry in runs.values() if metric in entry]
    if not values:
        logged = sorted({key for entry in runs.values() for key in entry if key.startswith("val/")})
        raise ValueError(f"no run of stage {stage} logs {metric}; its validation metrics: {', '.join(logged)}")
    value = sum(values) / len(values)
    if not math.isfinite(value):
        raise ValueError(f"{metric} is {value}")
    return value, runs


class TrialPruning(pl.Callback):
    """Reports the validation metric after each epoch; raises TrialPruned when the pruner gives up.

    Optuna's ``PyTorchLightningPruningCallback`` reports at step = epoch, so a stage's second fit
    (the next strategy) would report the same steps again and be ignored. Here fit k (from 0) of a
    trial reports at step ``k * 10000 + epoch``: each strategy is compared with itself across trials.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, first_step: int):
        self.trial, self.monitor, self.first_step = trial, monitor, first_step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        self.trial.report(float(value), step=self.first_step + trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {trainer.current_epoch + 1} of fit {self.first_step // FIT_STEPS + 1}"
            )


@contextmanager
def pruning(trial: optuna.Trial, metric: str) -> Iterator[None]:
    """Every fit the stage makes inside reports to ``trial`` (val/loss per epoch for val/best_loss)."""
    monitor = "val/loss" if metric == "val/best_loss" else metric
    fits = 0

    def callbacks() -> list[pl.Callback]:
        nonlocal fits
        fits += 1
        return [TrialPruning(trial, monitor, first_step=(fits - 1) * FIT_STEPS)]

    token = FIT_CALLBACKS.set(callbacks)
    try:
        yield
    finally:
        FIT_CALLBACKS.reset(token)
