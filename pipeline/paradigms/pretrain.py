"""Pre-training: train the base model on the abundant source task.

Its checkpoint (``models/pretrain/base.pt``) is what transfer learning and fine-tuning
start from.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from pipeline.config.schema import Params
from pipeline.data.prepared import PREPARED_DIR, load_task
from pipeline.models.checkpoint import save_classifier
from pipeline.models.classifier import build_classifier
from pipeline.models.lightning_module import ClassificationModule
from pipeline.seeding import seed_everything
from pipeline.tracking.outputs import PLOTS_DIR, write_csv
from pipeline.tracking.runs import stage_run
from pipeline.training.runner import fit_and_test

STAGE = "pretrain"
SECTIONS = ("seed", "model", "trainer", "pretrain")  # the params this stage depends on, as in dvc.yaml
MODEL_DIR = Path("models/pretrain")


def run_pretrain(
    params: Params, data_dir: Path = PREPARED_DIR, model_dir: Path = MODEL_DIR, plots_dir: Path = PLOTS_DIR / STAGE
) -> dict[str, dict]:
    """Train, save the base checkpoint and the plot data; return ``{variant: {run_id, metrics...}}``."""
    task = load_task(Path(data_dir) / "source.npz")
    cfg = params.trainer_for(STAGE)
    seed_everything(params.seed)
    model = build_classifier(params.model, task.input_shape, task.num_classes)
    module = ClassificationModule(model, task.num_classes, cfg)
    with stage_run(params, STAGE, paradigm="pretrain", variant="base", sections=SECTIONS) as run:
        result = fit_and_test(module, task, cfg, params.seed, run, label=STAGE)
        checkpoint = Path(model_dir) / "base.pt"
        save_classifier(checkpoint, model, params.model, task.input_shape, task.classes)
        result.metrics["model/checkpoint_bytes"] = checkpoint.stat().st_size
        mlflow.log_metric("model/checkpoint_bytes", result.metrics["model/checkpoint_bytes"])
        mlflow.log_artifact(str(checkpoint), "model")
    write_csv(Path(plots_dir) / "history.csv", result.history)
    write_csv(
        Path(plots_dir) / "confusion.csv",
        [{"actual": int(t), "predicted": int(p)} for t, p in zip(result.y_true, result.y_pred)],
    )
    return {"base": {"run_id": run.info.run_id, **result.metrics}}
