"""Freeze and unfreeze parts of a model, and keep frozen normalisation layers truly frozen.

A frozen layer gets no gradient and no optimizer state. Its normalisation statistics are
kept too: BatchNorm layers whose weights are all frozen stay in eval mode while the rest of
the model trains, so they normalise with the statistics learnt on the source task and never
update them.
"""

from __future__ import annotations

from typing import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def set_trainable(modules: Iterable[nn.Module], trainable: bool) -> None:
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(trainable)


def freeze_all_but(model: nn.Module, trainable: Iterable[nn.Module]) -> None:
    """Freeze every parameter of ``model`` except those of ``trainable``."""
    set_trainable([model], False)
    set_trainable(trainable, True)


def hold_frozen_norms(model: nn.Module) -> None:
    """Put every normalisation layer whose parameters are all frozen in eval mode (stored statistics, no updates)."""
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, _BatchNorm) and params and not any(p.requires_grad for p in params):
            module.eval()


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [name for name, param in model.named_parameters() if param.requires_grad]


def describe_trainable(model: nn.Module, limit: int = 2000) -> str:
    """The modules that own trainable parameters, comma-separated (for a run tag; PEFT's wrapper prefix dropped)."""
    owners = dict.fromkeys(
        name.rsplit(".", 1)[0].removeprefix("base_model.model.") for name in trainable_parameter_names(model)
    )
    text = ",".join(owners)
    return text if len(text) <= limit else text[: limit - 3] + "..."
