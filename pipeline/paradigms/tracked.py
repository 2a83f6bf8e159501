"""One tracked training run, as every paradigm that trains makes it.

Open the stage's MLflow run, fit and test (the runner logs the contract metrics), log a
confusion matrix per output, save the trained model, log its size and the model itself as
an artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import lightning.pytorch as pl
import mlflow
import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from pipeline.config.schema import Params
from pipeline.data.prepared import TaskData
from pipeline.models.checkpoint import save_classifier
from pipeline.models.lightning_module import OUTPUT, ClassificationModule, OptimizerFactory
from pipeline.ranks import is_global_zero
from pipeline.tracking import figures
from pipeline.tracking.runs import run_label, stage_run
from pipeline.training.runner import FitResult, fit_and_test, make_loaders

Metrics = dict[str, float]


def training_sections(stage: str) -> tuple[str, ...]:
    """The params.yaml sections a training stage depends on, as its dvc.yaml entry lists them."""
    return ("seed", "repeats", "model", "trainer", stage)


def train_tracked(
    params: Params,
    stage: str,
    paradigm: str,
    variant: str,
    sections: tuple[str, ...],
    model: nn.Module,
    task: TaskData,
    saved_at: Path,
    save: Optional[Callable[[Path], None]] = None,
    optimizer_factory: Optional[OptimizerFactory] = None,
    callbacks: Sequence[pl.Callback] = (),
    tags: Optional[dict[str, str]] = None,
) -> tuple[dict, FitResult]:
    """Train the classifier ``model`` on ``task`` and save it at ``saved_at``; ``tags`` go on the run.

    ``save(saved_at)`` writes the trained model (a file or a folder); by default a classifier
    checkpoint that :func:`pipeline.models.checkpoint.load_classifier` reads back.

    Returns ``{"run_id": ..., <metric>: value}`` and the fit's history and test predictions.
    """
    cfg = params.trainer_for(stage)
    module = ClassificationModule(model, task.num_classes, cfg, optimizer_factory)
    if save is None:
        save = lambda path: save_classifier(path, model, params.model, task.input_shape, task.classes)  # noqa: E731
    return fit_tracked(
        params, stage, paradigm, variant, sections, module, make_loaders(task.X, task.y, cfg, params.seed),
        {OUTPUT: task.classes}, saved_at, save, callbacks, tags,
    )


def fit_tracked(
    params: Params,
    stage: str,
    paradigm: str,
    variant: str,
    sections: tuple[str, ...],
    module: pl.LightningModule,
    loaders: dict[str, DataLoader],
    classes: dict[str, np.ndarray],
    saved_at: Path,
    save: Callable[[Path], None],
    callbacks: Sequence[pl.Callback] = (),
    tags: Optional[dict[str, str]] = None,
    derived: Optional[Callable[[Metrics], Metrics]] = None,
) -> tuple[dict, FitResult]:
    """Fit and test any tracked module (see :class:`pipeline.training.runner.TrackedModule`) in its own run.

    ``classes`` names the classes of each output, for its confusion matrix; ``derived(metrics)``
    adds metrics computed from the run's own (e.g. ratios against other runs), logged on it too.
    """
    cfg = params.trainer_for(stage)
    label = run_label(stage, variant)
    with stage_run(params, stage, paradigm=paradigm, variant=variant, sections=sections) as run:
        mlflow.set_tags(tags or {})
        result = fit_and_test(module, loaders, cfg, params.seed, run, label=label, extra_callbacks=callbacks)
        log_confusions(result, classes, label)
        save(saved_at)
        extra = {"model/checkpoint_bytes": size_on_disk(saved_at)}
        extra |= derived(result.metrics | extra) if derived else {}
        result.metrics |= extra
        mlflow.log_metrics(extra)
        if is_global_zero():  # a distributed fit's later processes saved nothing (pipeline.ranks)
            log_saved_model(saved_at)
    return {"run_id": run.info.run_id, **result.metrics}, result


def log_confusions(result: FitResult, classes: dict[str, np.ndarray], label: str) -> None:
    """One confusion matrix per output: ``plots/confusion_matrix.png``, or ``..._<output>.png`` for several."""
    several = len(result.predictions) > 1
    for output, (y_true, y_pred) in result.predictions.items():
        names = classes[output]
        matrix = np.zeros((len(names), len(names)), dtype=int)
        np.add.at(matrix, (y_true, y_pred), 1)
        acc = result.metrics.get(f"test/{output}/acc", result.metrics["test/acc"])
        title = f"{label}{f' · {output}' if several else ''}: test, acc {acc:.3f}"
        fig = figures.confusion_figure(matrix, names, title)
        mlflow.log_figure(fig, f"plots/confusion_matrix_{output}.png" if several else "plots/confusion_matrix.png")
        figures.close(fig)


def log_saved_model(saved_at: Path) -> None:
    if saved_at.is_dir():
        mlflow.log_artifacts(str(saved_at), f"model/{saved_at.name}")
    else:
        mlflow.log_artifact(str(saved_at), "model")


def size_on_disk(path: Path) -> int:
    if not is_global_zero():  # a distributed fit's later processes saved nothing (pipeline.ranks)
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
