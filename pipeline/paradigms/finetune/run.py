"""The ``finetune`` stage: the pretrained base adapted to the target task, one run per strategy.

Every strategy starts from the same base with a new head sized for the target classes:

- ``full``: every layer trains; the body at ``trainer.lr × finetune.body_lr_factor``;
- ``partial``: only the top ``finetune.unfreeze_layers`` layers train; with
  ``finetune.unfreeze_every`` they thaw one at a time, top first (gradual unfreezing);
- ``lora``, ``lora_fa``, ``vera``, ``lora_fa_svd``, ``pissa``, ``svd_diag``: adapters on the frozen body
  (:mod:`pipeline.paradigms.finetune.adapters`).

Whole models are saved as ``models/finetune/<strategy>.pt``; adapters as folders
``models/finetune/<strategy>/`` holding only the adapter and head, to merge into the base.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import lightning.pytorch as pl
from torch import nn

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import TaskData, load_task
from pipeline.io import atomic_dir
from pipeline.models.classifier import Classifier
from pipeline.models.freezing import describe_trainable, freeze_all_but
from pipeline.models.reuse import load_base_for, renew_top_layers, top_layer_names
from pipeline.paradigms.finetune import PARADIGM
from pipeline.paradigms.finetune.adapters import add_adapters, lora_fa_optimizer, merged_copy, save_adapter
from pipeline.paradigms.finetune.config import ADAPTERS, FinetuneConfig
from pipeline.paradigms.fitted import train_classifier
from pipeline.paradigms.target import write_target_plots
from pipeline.paths import StagePaths
from pipeline.seeding import seed_everything
from pipeline.tracking.contract import SavedModel
from pipeline.training.lightning_module import OptimizerFactory
from pipeline.training.optimizers import with_body_lr_factor
from pipeline.training.unfreezing import GradualUnfreezing


def run_finetune(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    """Every strategy in turn; the models folder appears only once all of them are saved."""
    task = load_task(paths.prepared(PARADIGM.task))
    base = load_base_for(task, paths.base, params.model)
    runs, trained = {}, {}
    with atomic_dir(paths.models) as out:
        for strategy in params.finetune.strategies_for(params.model.backbone):
            runs[strategy], trained[strategy] = _finetune(params, strategy, task, copy.deepcopy(base), out)
    write_target_plots(paths.plots, runs, trained)
    return runs


def _finetune(params: SharedParams, strategy: str, task: TaskData, model: Classifier, out: Path):
    seed_everything(params.seed)
    adapted, optimizer_factory, callbacks = adapt(params, strategy, model, task.input_shape, task.num_classes)
    if strategy in ADAPTERS:
        saved = SavedModel(
            out / strategy,
            lambda path: save_adapter(path, adapted, task.classes, task.input_shape),
            lambda: merged_copy(adapted),  # served merged: plain layers, no adapter overhead
        )
    else:
        saved = out / f"{strategy}.pt"  # a whole classifier checkpoint
    return train_classifier(
        params,
        PARADIGM.run_spec(strategy),
        adapted,
        task,
        saved,
        optimizer_factory,
        callbacks,
        tags={"trained_modules": describe_trainable(adapted)},
    )


def adapt(
    params: SharedParams, strategy: str, model: Classifier, input_shape: tuple[int, ...], num_classes: int
) -> tuple[nn.Module, Optional[OptimizerFactory], list[pl.Callback]]:
    """What ``strategy`` trains from the base ``model`` (a new head, then adapters or frozen layers),
    the optimizer factory it trains with, and its callbacks (gradual unfreezing)."""
    cfg = params.finetune
    renew_top_layers(model, params.model, input_shape, num_classes, ["head"])
    if strategy in ADAPTERS:
        return (
            add_adapters(model, strategy, cfg, params.seed),
            lora_fa_optimizer(cfg) if strategy == "lora_fa" else None,
            [],
        )
    optimizer_factory = with_body_lr_factor(cfg.body_lr_factor) if cfg.body_lr_factor != 1 else None
    callbacks = _train_only_the_top(model, cfg, params.trainer_for(PARADIGM.stage).lr) if strategy == "partial" else []
    return model, optimizer_factory, callbacks


def _train_only_the_top(model: Classifier, cfg: FinetuneConfig, lr: float) -> list[GradualUnfreezing]:
    """``partial``: freeze all but the top ``unfreeze_layers``; with ``unfreeze_every``, thaw those gradually."""
    layers = top_layer_names(model, cfg.unfreeze_layers)
    freeze_all_but(model, [model.get_submodule(name) for name in layers])
    if not cfg.unfreeze_every:
        return []
    top_down = [model.get_submodule(name) for name in reversed(layers)]
    return [GradualUnfreezing(top_down, cfg.unfreeze_every, lr * cfg.body_lr_factor)]
