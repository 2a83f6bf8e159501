"""The model an active-learning run retrains on its labelled set each round.

It drives the project's LightningModule through :class:`InMemoryTrainer`: a round is a fixed
number of gradient steps, from the run's start weights (retraining) or from where the last
round ended (``warm_start``), always with a fresh optimizer. No validation labels are spent
on early stopping: the labels a curve counts are all the labels the model saw.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from pipeline.config.schema import TrainerConfig
from pipeline.training.in_memory import InMemoryTrainer, TensorSet, TrainingPass


class Learner(InMemoryTrainer):
    def __init__(self, model: nn.Module, num_classes: int, cfg: TrainerConfig, steps: int, warm_start: bool):
        super().__init__(model, num_classes, cfg, cfg.batch_size)
        self.steps = steps
        self.warm_start = warm_start
        self.start = copy.deepcopy(model.state_dict())

    def fit(self, X: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> TrainingPass:
        """``steps`` gradient steps on ``X``, ``y`` (tensors on the trainer's device)."""
        if not self.warm_start:
            self.model.load_state_dict(self.start)
        self.reset_optimizer()
        return self.train(TensorSet(X, y), generator, steps=self.steps)

    def probabilities(self, X: torch.Tensor) -> np.ndarray:
        """Predicted class probabilities ``[n, classes]``."""
        return torch.softmax(self.predict(X), dim=1).numpy()

    @torch.no_grad()
    def mc_dropout_probabilities(self, X: torch.Tensor, samples: int) -> np.ndarray:
        """``samples`` stochastic predictions ``[n, classes, samples]``: dropout on, batch norm in evaluation mode."""
        self.wrapped.eval()
        dropouts = [m for m in self.model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        for m in dropouts:
            m.train()
        X = X.to(self.device)  # once, not once per sample
        draws = [torch.softmax(self.forward_in_chunks(X), dim=1) for _ in range(samples)]
        for m in dropouts:
            m.eval()
        return torch.stack(draws, dim=-1).numpy()
