"""The student's LightningModule: the classifier's, trained on the distillation loss.

Its training batches carry the teacher's logits for each example (computed once, the teacher in eval
mode: it does not change while the student learns); validation and test are those of every classifier
(cross-entropy on true labels), so the student's scores read like any other run's.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pipeline.config.schema import TrainerConfig
from pipeline.paradigms.distill.loss import distillation_loss
from pipeline.training.lightning_module import ClassificationModule, OptimizerFactory


class DistillationModule(ClassificationModule):
    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        trainer_cfg: TrainerConfig,
        temperature: float,
        alpha: float,
        optimizer_factory: Optional[OptimizerFactory] = None,
    ):
        super().__init__(student, num_classes, trainer_cfg, optimizer_factory)
        self.temperature, self.alpha = temperature, alpha

    def loss(self, batch) -> torch.Tensor:
        x, y, teacher_logits = batch
        return distillation_loss(self(x), teacher_logits, y, self.temperature, self.alpha)
