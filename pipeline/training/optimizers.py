"""The optimizer named in ``trainer.optimizer``, over the parameters that train."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union

import torch

from pipeline.config.schema import TrainerConfig

ParamsOrGroups = Union[Iterable[torch.nn.Parameter], list[dict[str, Any]]]


def build_optimizer(
    parameters: ParamsOrGroups, cfg: TrainerConfig, fused: Optional[bool] = None
) -> torch.optim.Optimizer:
    """Frozen parameters (``requires_grad=False``) are left out: they get no optimizer state.

    ``parameters`` may also be torch-style param groups (dicts with ``params`` and e.g. ``lr``). ``fused``: torch's
    one-kernel update, for large contiguous tensors (None: torch's default).
    """
    items = list(parameters)
    if items and isinstance(items[0], dict):
        groups = [g | {"params": [p for p in g["params"] if p.requires_grad]} for g in items]
        trainable: Any = [g for g in groups if g["params"]]
    else:
        trainable = [p for p in items if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def with_body_lr_factor(factor: float):
    """An optimizer factory: the head learns at ``trainer.lr``, the body at ``trainer.lr × factor``."""

    def build(model: torch.nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
        groups = [
            {"params": list(model.head.parameters()), "lr": cfg.lr},
            {"params": list(model.body.parameters()), "lr": cfg.lr * factor},
        ]
        return build_optimizer(groups, cfg)

    return build
