"""The ``transfer`` stage: new top layers on the frozen pretrained body.

The top ``transfer.replace_layers`` layers (default the head) are replaced by freshly
initialised ones sized for the target task; every other layer is frozen: no gradient, no
optimizer state, its normalisation statistics kept. Only the new layers learn.
"""

from __future__ import annotations

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import load_task
from pipeline.models.classifier import Classifier
from pipeline.models.freezing import describe_trainable, freeze_all_but
from pipeline.models.reuse import load_base_for, renew_top_layers, top_layer_names
from pipeline.paradigms.fitted import train_classifier
from pipeline.paradigms.target import write_target_plots
from pipeline.paradigms.transfer import PARADIGM
from pipeline.paths import MODEL_FILE, StagePaths
from pipeline.seeding import seed_everything

VARIANT = "frozen_body"


def run_transfer(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    task = load_task(paths.prepared(PARADIGM.task))
    model = load_base_for(task, paths.base, params.model)
    seed_everything(params.seed)
    freeze_for_transfer(params, model, task.input_shape, task.num_classes)
    entry, trained = train_classifier(
        params,
        PARADIGM.run_spec(VARIANT),
        model,
        task,
        paths.models / MODEL_FILE,
        tags={"trained_modules": describe_trainable(model)},
    )
    runs = {VARIANT: entry}
    write_target_plots(paths.plots, runs, {VARIANT: trained})
    return runs


def freeze_for_transfer(
    params: SharedParams, model: Classifier, input_shape: tuple[int, ...], num_classes: int
) -> Classifier:
    """The base ``model`` with its top ``transfer.replace_layers`` renewed for the target and the rest frozen."""
    renewed = top_layer_names(model, params.transfer.replace_layers)
    renew_top_layers(model, params.model, input_shape, num_classes, renewed)
    freeze_all_but(model, [model.get_submodule(name) for name in renewed])
    return model
