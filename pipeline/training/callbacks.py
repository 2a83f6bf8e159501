"""Callbacks: one progress line per epoch, the per-epoch history, the best epoch's weights, training
throughput, model-state memory."""

from __future__ import annotations

import math
import sys

import lightning.pytorch as pl
import torch

from pipeline.memory import model_state_bytes
from pipeline.memory.activations import SavedTensorBytes
from pipeline.training.clock import now

HISTORY_KEYS = ("train/loss", "val/loss", "val/acc")


class EpochHistory(pl.Callback):
    """Prints ``epoch 3/30  train/loss ...`` once per epoch and keeps the rows for plots."""

    def __init__(self, label: str = "", keys: tuple[str, ...] = HISTORY_KEYS):
        self.label = f"[{label}] " if label else ""
        self.keys = keys
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1}
        row |= {key: round(float(metrics[key]), 6) for key in self.keys if key in metrics}
        self.rows.append(row)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch")
        if trainer.is_global_zero:  # one line per epoch, however many processes train
            print(f"{self.label}epoch {row['epoch']}/{trainer.max_epochs}  {shown}", file=sys.stderr, flush=True)


class BestWeights(pl.Callback):
    """A CPU copy of the weights at the lowest ``monitor`` so far: the epoch a run restores and reports.

    Kept in memory, not in a checkpoint file, so that every process of a multi-GPU or multi-node
    run holds the same copy without sharing a folder.

    Raises:
        RuntimeError: after a validation that did not log ``monitor``, naming what it logged
            (as Lightning's ``EarlyStopping(strict=True)`` does): a run must not silently keep no epoch.
    """

    def __init__(self, monitor: str):
        self.monitor = monitor
        self.best_score: float | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            logged = ", ".join(f"`{key}`" for key in trainer.callback_metrics) or "none"
            raise RuntimeError(
                f"BestWeights keeps the epoch with the lowest `{self.monitor}`, which validation did not log; "
                f"it logged: {logged}"
            )
        score = float(trainer.callback_metrics[self.monitor])
        if self.best_score is None or math.isnan(self.best_score) or score < self.best_score:
            self.best_score = score
            self.state = {key: value.detach().to("cpu", copy=True) for key, value in pl_module.state_dict().items()}


class Throughput(pl.Callback):
    """Training samples per second over the training part of each epoch (validation excluded).

    Timed per epoch, not per batch, so CUDA work is synchronised only twice an epoch.
    """

    def __init__(self):
        self.samples = 0
        self.seconds = 0.0
        self.processes = 1
        self._started: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = now(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch[-1])

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._stop(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop(pl_module)

    def _stop(self, pl_module) -> None:
        if self._started is not None:
            self.seconds += now(pl_module.device) - self._started
            self._started = None

    def on_fit_end(self, trainer, pl_module) -> None:
        self.processes = trainer.world_size  # each trains on its share of every epoch

    @property
    def samples_per_s(self) -> float:
        """Over all processes of a distributed run (each counts the samples it saw)."""
        return self.processes * self.samples / self.seconds if self.seconds else 0.0


class ModelStateProbe(pl.Callback):
    """Measures the model state training holds (:func:`~pipeline.memory.model_state_bytes`) once,
    right after the first optimizer step: gradients and optimizer state exist then."""

    def __init__(self):
        self.bytes = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.bytes and trainer.global_step >= 1:  # with gradient accumulation, the first batches do not step
            self.bytes = model_state_bytes(pl_module, trainer.optimizers)


class ActivationProbe(pl.Callback):
    """Measures the activation bytes of the first training batch (:mod:`pipeline.memory.activations`):
    what its forward pass and loss leave saved for backward."""

    def __init__(self):
        self.bytes = 0
        self._counting = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.bytes and self._counting is None:
            self._counting = SavedTensorBytes(pl_module).counting()
            self._meter = self._counting.__enter__()

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._stop()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._stop()  # a step that ran no backward

    def _stop(self) -> None:
        if self._counting is not None:
            self._counting.__exit__(None, None, None)
            self.bytes, self._counting = self._meter.bytes, None
