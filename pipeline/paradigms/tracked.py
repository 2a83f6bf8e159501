"""One tracked training run, as every paradigm that trains a classifier makes it.

Open the stage's MLflow run, fit and test (the runner logs the contract metrics), save the
trained model, log its size and the model itself as an artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import lightning.pytorch as pl
import mlflow
from torch import nn

from pipeline.config.schema import Params
from pipeline.data.prepared import TaskData
from pipeline.models.checkpoint import save_classifier
from pipeline.models.lightning_module import ClassificationModule, OptimizerFactory
from pipeline.tracking.runs import stage_run
from pipeline.training.runner import FitResult, fit_and_test


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
    """Train ``model`` on ``task`` and save it at ``saved_at``; ``tags`` go on the run.

    ``save(saved_at)`` writes the trained model (a file or a folder); by default a classifier
    checkpoint that :func:`pipeline.models.checkpoint.load_classifier` reads back.

    Returns ``{"run_id": ..., <metric>: value}`` and the fit's history and test predictions.
    """
    cfg = params.trainer_for(stage)
    module = ClassificationModule(model, task.num_classes, cfg, optimizer_factory)
    label = stage if variant in ("", stage) else f"{stage}/{variant}"
    with stage_run(params, stage, paradigm=paradigm, variant=variant, sections=sections) as run:
        mlflow.set_tags(tags or {})
        result = fit_and_test(module, task, cfg, params.seed, run, label=label, extra_callbacks=callbacks)
        if save is None:
            save_classifier(saved_at, model, params.model, task.input_shape, task.classes)
        else:
            save(saved_at)
        result.metrics["model/checkpoint_bytes"] = size_on_disk(saved_at)
        mlflow.log_metric("model/checkpoint_bytes", result.metrics["model/checkpoint_bytes"])
        if saved_at.is_dir():
            mlflow.log_artifacts(str(saved_at), f"model/{saved_at.name}")
        else:
            mlflow.log_artifact(str(saved_at), "model")
    return {"run_id": run.info.run_id, **result.metrics}, result


def size_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
