"""The ``pretrain`` stage: train the base model on the source task and save it where transfer and
fine-tuning start from (:data:`pipeline.paths.BASE_CHECKPOINT`)."""

from __future__ import annotations

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import load_task
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.fitted import train_classifier
from pipeline.paradigms.pretrain import PARADIGM
from pipeline.paths import BASE_CHECKPOINT, StagePaths
from pipeline.seeding import seed_everything
from pipeline.tracking.contract import Trained
from pipeline.tracking.outputs import write_csv
from pipeline.training.lightning_module import OUTPUT

VARIANT = "base"


def run_pretrain(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    """Train, save the base checkpoint and the plot data; return ``{variant: {run_id, metrics...}}``."""
    task = load_task(paths.prepared(PARADIGM.task))
    seed_everything(params.seed)
    model = build_classifier(params.model, task.input_shape, task.num_classes)
    entry, trained = train_classifier(
        params, PARADIGM.run_spec(VARIANT), model, task, paths.models / BASE_CHECKPOINT.name
    )
    write_csv(paths.plots / "history.csv", trained.history)
    write_csv(paths.plots / "confusion.csv", confusion_rows(trained))
    return {VARIANT: entry}


def confusion_rows(trained: Trained) -> list[dict[str, int]]:
    """One row per test example, as ``dvc plots``' confusion template reads them."""
    y_true, y_pred = trained.predictions[OUTPUT]
    return [{"actual": int(t), "predicted": int(p)} for t, p in zip(y_true, y_pred)]
