"""A Lightning fit in its own tracked run, as the paradigms that train by epochs make it.

Open the run, fit and test (:func:`pipeline.training.runner.fit_and_test`), then hand what trained to
the run contract (:mod:`pipeline.tracking.contract`), which logs, saves and checks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import lightning.pytorch as pl
import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import TaskData
from pipeline.tracking.contract import Metrics, RunSpec, SavedModel, Trained, tracked_run
from pipeline.training.lightning_module import OUTPUT, ClassificationModule, OptimizerFactory
from pipeline.training.runner import fit_and_test, make_loaders


def train_classifier(
    params: SharedParams,
    spec: RunSpec,
    model: nn.Module,
    task: TaskData,
    saved: Path | SavedModel,
    optimizer_factory: Optional[OptimizerFactory] = None,
    callbacks: Sequence[pl.Callback] = (),
    tags: Optional[dict[str, str]] = None,
    derived: Optional[Callable[[Metrics], Metrics]] = None,
) -> tuple[dict, Trained]:
    """Train the classifier ``model`` on ``task`` in the run ``spec``; ``tags`` go on the run, ``derived`` as in
    :func:`fit_tracked`.

    ``saved``: a path for a classifier checkpoint (:func:`pipeline.models.checkpoint.load_classifier`
    reads it back), or a :class:`SavedModel` that writes the model some other way (an adapter).
    Returns ``{"run_id": ..., <metric>: value}`` and what trained, with its history and test predictions.
    """
    cfg = params.trainer_for(spec.stage)
    if not isinstance(saved, SavedModel):
        saved = SavedModel.classifier(saved, model, params.model, task)
    module = ClassificationModule(model, task.num_classes, cfg, optimizer_factory)
    loaders = make_loaders(task.X, task.y, cfg, params.seed)
    return fit_tracked(params, spec, module, loaders, task, {OUTPUT: task.classes}, saved, callbacks, tags, derived)


def fit_tracked(
    params: SharedParams,
    spec: RunSpec,
    module: pl.LightningModule,
    loaders: dict[str, DataLoader],
    data: TaskData,
    classes: dict[str, np.ndarray],
    saved: SavedModel,
    callbacks: Sequence[pl.Callback] = (),
    tags: Optional[dict[str, str]] = None,
    derived: Optional[Callable[[Metrics], Metrics]] = None,
) -> tuple[dict, Trained]:
    """Fit and test any tracked module (see :class:`pipeline.training.runner.TrackedModule`) in the run ``spec``.

    ``data`` is the prepared task the loaders hold (logged as the run's datasets, it gives the served model its
    input shape and test examples); ``classes`` names the classes of each output, for its confusion matrix and
    the served model's labels; ``derived(metrics)``
    adds metrics computed from the run's own (e.g. ratios against other runs), logged on it too.
    """
    with tracked_run(params, spec, tags) as run:
        cfg = params.trainer_for(spec.stage)
        trained = fit_and_test(module, loaders, cfg, params.seed, run.run, spec.label, extra_callbacks=callbacks)
        return run.finish(trained, data, classes, saved, derived), trained
