"""Start a target-task model from the pretrained base: load it, check it fits the task, renew its top layers.

The target task always gets a new head sized for its classes (with ``new_classes`` the old
head has no meaning; with ``domain_shift`` a fresh head keeps every strategy comparable).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.config.schema import ModelConfig
from pipeline.data.prepared import TaskData
from pipeline.errors import DataError
from pipeline.models.checkpoint import load_classifier
from pipeline.models.classifier import Classifier, build_classifier
from pipeline.seeding import seed_everything


def load_base_for(task: TaskData, checkpoint: str | Path, model_cfg: ModelConfig) -> Classifier:
    """The pretrained classifier, refused clearly if missing, built from other ``model`` params or for inputs other
    than ``task``'s."""
    model, payload = load_classifier(checkpoint, model_cfg)
    if tuple(payload["input_shape"]) != task.input_shape:
        raise DataError(
            f"{checkpoint}: the base model takes inputs of shape {tuple(payload['input_shape'])}, this stage's data "
            "has "
            f"{task.input_shape}; re-run `dvc repro pretrain`"
        )
    return model


def top_layer_names(model: Classifier, n: int) -> list[str]:
    """The names of the top ``n`` layers, head last (the params schema checks ``n`` against ``model.depth``)."""
    names = [name for name, _ in model.layers()]
    if not 1 <= n <= len(names):
        raise ValueError(f"asked for the top {n} layers of a model with {len(names)}: {', '.join(names)}")
    return names[-n:]


def renew_top_layers(
    model: Classifier, model_cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, names: list[str]
) -> Classifier:
    """Replace the named layers by freshly initialised ones; the head gets ``num_classes`` outputs.

    Seed torch first: the fresh layers' initial weights are drawn from it.
    """
    fresh = build_classifier(model_cfg, input_shape, num_classes)
    for name in names:
        _set_submodule(model, name, fresh.get_submodule(name))
    return model


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def starting_classifier(
    model_cfg: ModelConfig, task: TaskData, base_checkpoint: str | Path, from_base: bool, seed: int
) -> Classifier:
    """What a stage's runs start from: the pretrained base with a new head (``from_base``) or random weights."""
    seed_everything(seed)
    if not from_base:
        return build_classifier(model_cfg, task.input_shape, task.num_classes)
    model = load_base_for(task, base_checkpoint, model_cfg)
    return renew_top_layers(model, model_cfg, task.input_shape, task.num_classes, top_layer_names(model, 1))


def classifier_with(model_cfg: ModelConfig, task: TaskData, state: dict[str, torch.Tensor]) -> Classifier:
    """A new classifier for ``task`` holding ``state``: each run of a stage gets its own copy of the shared start."""
    model = build_classifier(model_cfg, task.input_shape, task.num_classes)
    model.load_state_dict(state)
    return model
