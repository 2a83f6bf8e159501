"""The optimizer named in ``trainer.optimizer``, over the parameters that train."""

from __future__ import annotations

from typing import Iterable

import torch

from pipeline.config.schema import TrainerConfig


def build_optimizer(parameters: Iterable[torch.nn.Parameter], cfg: TrainerConfig) -> torch.optim.Optimizer:
    trainable = [p for p in parameters if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
