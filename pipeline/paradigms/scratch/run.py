"""The ``scratch`` stage: the same architecture from random initialisation, on the same target data.

Without it no transfer or fine-tuning result means anything: it is what the target task
reaches with its few labels alone.
"""

from __future__ import annotations

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import load_task
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.fitted import train_classifier
from pipeline.paradigms.scratch import PARADIGM
from pipeline.paradigms.target import write_target_plots
from pipeline.paths import MODEL_FILE, StagePaths
from pipeline.seeding import seed_everything

VARIANT = "scratch"


def run_scratch(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    task = load_task(paths.prepared(PARADIGM.task))
    seed_everything(params.seed)
    model = build_classifier(params.model, task.input_shape, task.num_classes)
    entry, trained = train_classifier(params, PARADIGM.run_spec(VARIANT), model, task, paths.models / MODEL_FILE)
    runs = {VARIANT: entry}
    write_target_plots(paths.plots, runs, {VARIANT: trained})
    return runs
