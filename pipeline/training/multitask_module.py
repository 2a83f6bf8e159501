"""The LightningModule that trains a :class:`MultiTaskNet`: one loss per task, combined by a weighting.

Metric names extend the tracking contract per task (``train/<task>/loss``,
``val/<task>/acc``, ``test/<task>/acc``, ``test/<task>/f1_macro``, ...) and keep the
standard ones, so multi-task and single-task runs line up with every other run:

- ``val/loss``, ``test/loss``: the tasks' cross-entropies averaged with the declared task
  weights. Model selection and early stopping watch ``val/loss``, which does not move with
  learned weights, so every weighting is judged by the same yardstick;
- ``val/acc``, ``test/acc``, ``test/f1_macro``: the mean over tasks;
- ``train/loss``: the combined loss the optimizer minimises;
- ``loss_weight/<task>``: each task's effective loss weight, its mean over each epoch's steps.

Batches are ``(x, y)`` with ``y`` of shape ``(batch, tasks)``: column ``i`` holds task ``i``'s labels.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from pipeline.config.schema import TrainerConfig
from pipeline.models.loss_weighting import LossWeighting
from pipeline.models.multitask import Branch, MultiTaskNet
from pipeline.training.optimizers import build_optimizer


class MultiTaskModule(pl.LightningModule):
    def __init__(
        self,
        net: MultiTaskNet,
        branches: list[Branch],
        weighting: LossWeighting,
        declared_weights: list[float],
        trainer_cfg: TrainerConfig,
    ):
        super().__init__()
        self.net = net
        self.tasks = [branch.name for branch in branches]
        self.weighting = weighting
        self.trainer_cfg = trainer_cfg
        self.register_buffer("declared", torch.tensor(declared_weights, dtype=torch.float32) / sum(declared_weights))
        self.val_acc = _per_task(branches, MulticlassAccuracy, average="micro")
        self.test_acc = _per_task(branches, MulticlassAccuracy, average="micro")
        self.test_f1 = _per_task(branches, MulticlassF1Score, average="macro")
        self.history_keys = (
            "train/loss",
            "val/loss",
            "val/acc",
            *(f"val/{t}/acc" for t in self.tasks),
            *(f"loss_weight/{t}" for t in self.tasks),
        )
        self._test_labels: dict[str, list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    def task_losses(self, logits: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """One cross-entropy per task, in task order."""
        return torch.stack([nn.functional.cross_entropy(logits[t], y[:, i]) for i, t in enumerate(self.tasks)])

    def loss(self, batch) -> torch.Tensor:
        """A batch's combined training loss (what the activation-memory prediction runs)."""
        x, y = batch
        return self.weighting(self.task_losses(self(x), y))

    def training_step(self, batch, batch_idx):
        x, y = batch
        losses = self.task_losses(self(x), y)
        loss = self.weighting(losses)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        for task, task_loss, weight in zip(self.tasks, losses, self.weighting.weights()):
            self.log(f"train/{task}/loss", task_loss, on_step=False, on_epoch=True, batch_size=len(y))
            # its mean over the epoch
            self.log(f"loss_weight/{task}", weight, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("step", float(self.current_epoch + 1))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_acc)

    def on_validation_epoch_end(self) -> None:
        self._log_means("val", {"acc": self.val_acc})
        self.log("step", float(self.current_epoch + 1))

    def on_test_epoch_start(self) -> None:
        self._test_labels = {f"{t}/{kind}": [] for t in self.tasks for kind in ("true", "pred")}

    def test_step(self, batch, batch_idx):
        logits = self._evaluate(batch, "test", self.test_acc)
        y = batch[1]
        for i, task in enumerate(self.tasks):
            self.test_f1[task](logits[task], y[:, i])
            self._test_labels[f"{task}/true"].append(y[:, i].cpu())
            self._test_labels[f"{task}/pred"].append(logits[task].argmax(dim=1).cpu())

    def on_test_epoch_end(self) -> None:
        self._log_means("test", {"acc": self.test_acc, "f1_macro": self.test_f1})

    def test_predictions(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per task, the true and predicted class of every test example."""
        return {
            t: tuple(torch.cat(self._test_labels[f"{t}/{kind}"]).numpy() for kind in ("true", "pred"))
            for t in self.tasks
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return build_optimizer(self.parameters(), self.trainer_cfg)  # the learned loss weights train too

    def _evaluate(self, batch, split: str, accuracy: nn.ModuleDict) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self(x)
        losses = self.task_losses(logits, y)
        self.log(f"{split}/loss", (self.declared * losses).sum(), on_epoch=True, batch_size=len(y))
        for i, task in enumerate(self.tasks):
            accuracy[task](logits[task], y[:, i])
            self.log(f"{split}/{task}/loss", losses[i], on_epoch=True, batch_size=len(y))
        return logits

    def _log_means(self, split: str, metrics: dict[str, nn.ModuleDict]) -> None:
        """Each task's value of each metric, and their mean under the standard name."""
        for name, per_task in metrics.items():
            values = []
            for task in self.tasks:
                value = per_task[task].compute()
                per_task[task].reset()
                self.log(f"{split}/{task}/{name}", value)
                values.append(value)
            self.log(f"{split}/{name}", torch.stack(values).mean())


def _per_task(branches: list[Branch], metric, average: str) -> nn.ModuleDict:
    return nn.ModuleDict({b.name: metric(b.num_classes, average=average) for b in branches})
