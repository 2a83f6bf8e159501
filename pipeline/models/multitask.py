"""A multi-task network: one body shared by every task, one branch per task.

Hard parameter sharing: the body is the same backbone a single-task classifier has
(:func:`pipeline.models.classifier.build_body`); each task's branch is an optional tower of
its own layers, then an output layer sized for that task's classes. A single-task model is
the same network with one branch, so both are trained and measured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.config.schema import ModelConfig
from pipeline.errors import ConfigError
from pipeline.models.classifier import build_body, mlp_block


@dataclass(frozen=True)
class Branch:
    """What one task's branch needs: its name, its tower's hidden sizes and its number of classes."""

    name: str
    tower: tuple[int, ...]
    num_classes: int


class MultiTaskNet(nn.Module):
    def __init__(self, body: nn.Sequential, heads: nn.ModuleDict):
        super().__init__()
        self.body = body
        self.heads = heads

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per task, all from one pass through the shared body."""
        features = self.body(x)
        return {name: head(features) for name, head in self.heads.items()}


def build_multitask_net(cfg: ModelConfig, input_shape: tuple[int, ...], branches: list[Branch]) -> MultiTaskNet:
    reserved = [b.name for b in branches if hasattr(nn.ModuleDict, b.name)]
    if reserved:
        raise ConfigError(
            f"multitask task name(s) {', '.join(reserved)}: reserved by torch's ModuleDict; choose other names"
        )
    body, features = build_body(cfg, input_shape)
    heads = nn.ModuleDict({branch.name: _branch(cfg, features, branch) for branch in branches})
    return MultiTaskNet(body, heads)


def _branch(cfg: ModelConfig, width: int, branch: Branch) -> nn.Sequential:
    layers = nn.Sequential()
    for i, hidden in enumerate(branch.tower, start=1):
        layers.add_module(f"tower{i}", mlp_block(width, hidden, cfg))
        width = hidden
    layers.add_module("out", nn.Linear(width, branch.num_classes))
    return layers
