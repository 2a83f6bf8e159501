"""Callbacks: one progress line per epoch, the per-epoch history, training throughput, model-state memory."""

from __future__ import annotations

import sys
import time

import lightning.pytorch as pl
import torch

from pipeline.memory import model_state_bytes

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
        print(f"{self.label}epoch {row['epoch']}/{trainer.max_epochs}  {shown}", file=sys.stderr, flush=True)


class Throughput(pl.Callback):
    """Training samples per second over the training part of each epoch (validation excluded).

    Timed per epoch, not per batch, so CUDA work is synchronised only twice an epoch.
    """

    def __init__(self):
        self.samples = 0
        self.seconds = 0.0
        self._started: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = _now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch[-1])

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._stop(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop(pl_module)

    def _stop(self, pl_module) -> None:
        if self._started is not None:
            self.seconds += _now(pl_module) - self._started
            self._started = None

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def _now(pl_module: pl.LightningModule) -> float:
    if pl_module.device.type == "cuda":
        torch.cuda.synchronize(pl_module.device)
    return time.perf_counter()


class ModelStateProbe(pl.Callback):
    """Measures the model state training holds (:func:`~pipeline.memory.model_state_bytes`) once,
    right after the first optimizer step: gradients and optimizer state exist then."""

    def __init__(self):
        self.bytes = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.bytes and trainer.global_step >= 1:  # with gradient accumulation, the first batches do not step
            self.bytes = model_state_bytes(pl_module, trainer.optimizers)
