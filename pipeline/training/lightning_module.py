"""The LightningModule every paradigm trains: cross-entropy classification with standard metrics.

Metric names follow the tracking contract (``train/loss``, ``val/loss``, ``val/acc``,
``test/loss``, ``test/acc``, ``test/f1_macro``). Epoch metrics are logged with the epoch (1-based) as
their MLflow step, so learning curves read per epoch.
"""

from __future__ import annotations

from typing import Callable, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from pipeline.config.schema import TrainerConfig
from pipeline.models.freezing import hold_frozen_norms
from pipeline.training.callbacks import HISTORY_KEYS
from pipeline.training.optimizers import build_optimizer

OptimizerFactory = Callable[[nn.Module, TrainerConfig], torch.optim.Optimizer]
OUTPUT = "label"  # the one output a classifier predicts, as its test predictions are keyed


def classification_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss every classifier trains on (a Lightning fit, an in-memory training, batched federated clients)."""
    return nn.functional.cross_entropy(logits, y)


class ClassificationModule(pl.LightningModule):
    """``optimizer_factory(model, trainer_cfg)`` replaces the default optimizer (e.g. per-layer learning rates)."""

    history_keys = HISTORY_KEYS

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        trainer_cfg: TrainerConfig,
        optimizer_factory: Optional[OptimizerFactory] = None,
    ):
        super().__init__()
        self.model = model
        self.trainer_cfg = trainer_cfg
        self.optimizer_factory = optimizer_factory
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        self._test_pred: list[torch.Tensor] = []
        self._test_true: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_train_start(self) -> None:
        """Frozen normalisation layers keep their statistics (Lightning then keeps each module's mode across
        validation)."""
        hold_frozen_norms(self.model)

    def loss(self, batch) -> torch.Tensor:
        """A batch's training loss: what :meth:`training_step` logs, and what short in-memory trainings step on."""
        x, y = batch
        return classification_loss(self(x), y)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[1]))
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
        self._test_pred.clear()
        self._test_true.clear()

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.test_acc(logits, y)
        self.test_f1(logits, y)
        self._test_pred.append(logits.argmax(dim=1).cpu())
        self._test_true.append(y.cpu())
        self.log("test/loss", nn.functional.cross_entropy(logits, y), on_epoch=True, batch_size=len(y))
        self.log("test/acc", self.test_acc, on_epoch=True, batch_size=len(y))
        self.log("test/f1_macro", self.test_f1, on_epoch=True, batch_size=len(y))

    def test_predictions(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The true and predicted class of every test example."""
        return {OUTPUT: (torch.cat(self._test_true).numpy(), torch.cat(self._test_pred).numpy())}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is not None:
            return self.optimizer_factory(self.model, self.trainer_cfg)
        return build_optimizer(self.model.parameters(), self.trainer_cfg)
