"""Pre-training: train the base model on the abundant source task.

Its checkpoint (``models/pretrain/base.pt``) is what transfer learning and fine-tuning
start from.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config.schema import Params
from pipeline.data.prepared import PREPARED_DIR, load_task
from pipeline.models.classifier import build_classifier
from pipeline.models.lightning_module import OUTPUT
from pipeline.paradigms.tracked import train_tracked, training_sections
from pipeline.seeding import seed_everything
from pipeline.tracking.outputs import PLOTS_DIR, write_csv
from pipeline.training.runner import FitResult

STAGE = "pretrain"
SECTIONS = training_sections(STAGE)
MODEL_DIR = Path("models/pretrain")
BASE_CHECKPOINT = MODEL_DIR / "base.pt"


def run_pretrain(
    params: Params, data_dir: Path = PREPARED_DIR, model_dir: Path = MODEL_DIR, plots_dir: Path = PLOTS_DIR / STAGE
) -> dict[str, dict]:
    """Train, save the base checkpoint and the plot data; return ``{variant: {run_id, metrics...}}``."""
    task = load_task(Path(data_dir) / "source.npz")
    seed_everything(params.seed)
    model = build_classifier(params.model, task.input_shape, task.num_classes)
    entry, result = train_tracked(
        params, STAGE, "pretrain", "base", SECTIONS, model, task,
        saved_at=Path(model_dir) / BASE_CHECKPOINT.name,
    )
    write_csv(Path(plots_dir) / "history.csv", result.history)
    write_csv(Path(plots_dir) / "confusion.csv", confusion_rows(result))
    return {"base": entry}


def confusion_rows(result: FitResult) -> list[dict[str, int]]:
    """One row per test example, as ``dvc plots``' confusion template reads them."""
    y_true, y_pred = result.predictions[OUTPUT]
    return [{"actual": int(t), "predicted": int(p)} for t, p in zip(y_true, y_pred)]
