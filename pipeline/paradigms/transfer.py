"""Transfer learning: new top layers on the frozen pretrained body.

The top ``transfer.replace_layers`` layers (default the head) are replaced by freshly
initialised ones sized for the target task; every other layer is frozen: no gradient, no
optimizer state, its normalisation statistics kept. Only the new layers learn.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config.schema import Params
from pipeline.data.prepared import PREPARED_DIR
from pipeline.models.classifier import Classifier
from pipeline.models.freezing import describe_trainable, freeze_all_but
from pipeline.models.reuse import load_base_for, renew_top_layers, top_layer_names
from pipeline.paradigms.pretrain import BASE_CHECKPOINT
from pipeline.paradigms.target import load_target, write_target_plots
from pipeline.paradigms.tracked import train_tracked, training_sections
from pipeline.seeding import seed_everything
from pipeline.tracking.outputs import PLOTS_DIR

STAGE = "transfer"
SECTIONS = training_sections(STAGE)
MODEL_DIR = Path("models/transfer")
VARIANT = "frozen_body"


def run_transfer(
    params: Params,
    data_dir: Path = PREPARED_DIR,
    base_checkpoint: Path = BASE_CHECKPOINT,
    model_dir: Path = MODEL_DIR,
    plots_dir: Path = PLOTS_DIR / STAGE,
) -> dict[str, dict]:
    task = load_target(data_dir)
    model = load_base_for(task, base_checkpoint, params.model)
    seed_everything(params.seed)
    freeze_for_transfer(params, model, task.input_shape, task.num_classes)
    entry, result = train_tracked(
        params, STAGE, "transfer", VARIANT, SECTIONS, model, task,
        saved_at=Path(model_dir) / "model.pt",
        tags={"trained_modules": describe_trainable(model)},
    )
    runs = {VARIANT: entry}
    write_target_plots(plots_dir, runs, {VARIANT: result})
    return runs


def freeze_for_transfer(params: Params, model: Classifier, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """The base ``model`` with its top ``transfer.replace_layers`` renewed for the target and the rest frozen."""
    renewed = top_layer_names(model, params.transfer.replace_layers)
    renew_top_layers(model, params.model, input_shape, num_classes, renewed)
    freeze_all_but(model, [model.get_submodule(name) for name in renewed])
    return model
