"""The LightningModule every paradigm trains: cross-entropy classification with standard metrics.

Metric names follow the tracking contract (``train/loss``, ``val/loss``, ``val/acc``,
``test/loss``, ``test/acc``, ``test/f1_macro``). Epoch metrics are logged with the epoch (1-based) as
their MLflow step, so learning curves read per epoch.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from pipeline.config.schema import TrainerConfig
from pipeline.training.optimizers import build_optimizer


class ClassificationModule(pl.LightningModule):
    def __init__(self, model: nn.Module, num_classes: int, trainer_cfg: TrainerConfig):
        super().__init__()
        self.model = model
        self.trainer_cfg = trainer_cfg
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        self.test_predictions: list[torch.Tensor] = []
        self.test_targets: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("step", float(self.current_epoch + 1))

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val/loss", nn.functional.cross_entropy(logits, y), on_epoch=True, batch_size=len(y))
        self.log("val/acc", self.val_acc, on_epoch=True, batch_size=len(y))

    def on_validation_epoch_end(self) -> None:
        self.log("step", float(self.current_epoch + 1))

    def on_test_epoch_start(self) -> None:
        self.test_predictions.clear()
        self.test_targets.clear()

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.test_acc(logits, y)
        self.test_f1(logits, y)
        self.test_predictions.append(logits.argmax(dim=1).cpu())
        self.test_targets.append(y.cpu())
        self.log("test/loss", nn.functional.cross_entropy(logits, y), on_epoch=True, batch_size=len(y))
        self.log("test/acc", self.test_acc, on_epoch=True, batch_size=len(y))
        self.log("test/f1_macro", self.test_f1, on_epoch=True, batch_size=len(y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return build_optimizer(self.parameters(), self.trainer_cfg)
