"""The control: the same architecture from random initialisation, on the same target data.

Without it no transfer or fine-tuning result means anything: it is what the target task
reaches with its few labels alone.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config.schema import Params
from pipeline.data.prepared import PREPARED_DIR
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.target import load_target, write_target_plots
from pipeline.paradigms.tracked import train_tracked, training_sections
from pipeline.seeding import seed_everything
from pipeline.tracking.outputs import PLOTS_DIR

STAGE = "scratch"
SECTIONS = training_sections(STAGE)
MODEL_DIR = Path("models/scratch")


def run_scratch(
    params: Params, data_dir: Path = PREPARED_DIR, model_dir: Path = MODEL_DIR, plots_dir: Path = PLOTS_DIR / STAGE
) -> dict[str, dict]:
    task = load_target(data_dir)
    seed_everything(params.seed)
    model = build_classifier(params.model, task.input_shape, task.num_classes)
    entry, result = train_tracked(
        params, STAGE, "scratch", "scratch", SECTIONS, model, task,
        saved_at=Path(model_dir) / "model.pt",
    )
    runs = {"scratch": entry}
    write_target_plots(plots_dir, runs, {"scratch": result})
    return runs
