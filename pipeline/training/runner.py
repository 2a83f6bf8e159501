"""Fit a model, restore its best epoch, test it and log the measurements to MLflow.

Shared by every paradigm that trains (a classifier or a multi-task network), so all runs
report the same metrics (the tracking contract) and can be compared side by side. The
LightningModule logs its own quality metrics; this adds memory, time and throughput.
"""

from __future__ import annotations

import tempfile
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from pipeline.config.schema import TrainerConfig
from pipeline.memory import PeakMemory, estimate_training_memory
from pipeline.seeding import seed_everything
from pipeline.training.callbacks import BestWeights, EpochHistory, ModelStateProbe, Throughput
from pipeline.training.trainer import build_trainer

MONITOR = "val/loss"
# Callbacks that whoever runs a stage adds to each of its fits (a sweep's pruning), made fresh per
# fit, without threading them through every paradigm's signature.
FIT_CALLBACKS: ContextVar[Optional[Callable[[], Sequence[pl.Callback]]]] = ContextVar("fit_callbacks", default=None)


class TrackedModule(Protocol):
    """What the runner needs of a LightningModule besides its hooks (ClassificationModule, MultiTaskModule have it)."""

    history_keys: tuple[str, ...]  # the epoch metrics kept for learning-curve plots

    def test_predictions(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per output, the true and predicted class of every test example of the last test run."""


@dataclass
class FitResult:
    metrics: dict[str, float]
    history: list[dict[str, float]]
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]  # per output: true and predicted test classes
    device: str = "cpu"  # where it trained: a measured peak is exact on cuda, a process-wide estimate on cpu


def make_loaders(X: dict[str, np.ndarray], y: dict[str, np.ndarray], cfg: TrainerConfig, seed: int) -> dict[str, DataLoader]:
    """Loaders of each split's inputs and labels (one label per example, or one per task)."""

    def loader(split: str) -> DataLoader:
        data = TensorDataset(torch.from_numpy(X[split]), torch.from_numpy(y[split]))
        shuffle = split == "train"
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(data, batch_size=cfg.batch_size, shuffle=shuffle, generator=generator, num_workers=cfg.num_workers)

    return {split: loader(split) for split in ("train", "val", "test")}


def fit_and_test(
    module: pl.LightningModule,  # and a TrackedModule
    loaders: dict[str, DataLoader],
    cfg: TrainerConfig,
    seed: int,
    run: mlflow.ActiveRun,
    label: str,
    extra_callbacks: Sequence[pl.Callback] = (),
) -> FitResult:
    seed_everything(seed)
    history, throughput, model_state = EpochHistory(label, module.history_keys), Throughput(), ModelStateProbe()
    best = BestWeights(MONITOR)
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-") as root:
        around = FIT_CALLBACKS.get()
        callbacks: list[pl.Callback] = [history, throughput, model_state, best, *extra_callbacks, *(around() if around else ())]
        if cfg.early_stopping_patience:
            callbacks.append(EarlyStopping(monitor=MONITOR, mode="min", patience=cfg.early_stopping_patience))
        trainer = build_trainer(cfg, run, callbacks, root)
        if trainer.world_size > 1:
            loaders = loaders | {"train": _shared_out(loaders["train"], trainer, seed)}
        device = trainer.strategy.root_device
        with PeakMemory(device) as peak:
            started = time.perf_counter()
            trainer.fit(module, loaders["train"], loaders["val"])
            fit_seconds = time.perf_counter() - started
    module.load_state_dict(best.state)
    trainer.test(module, loaders["test"], verbose=False)

    optimizer = module.configure_optimizers()  # a fresh one over what trained: the estimator reads its kind and groups
    estimate = estimate_training_memory(module, optimizer, trainer.precision)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics |= estimate.as_metrics() | {
        "memory/peak_bytes": peak.peak_bytes,
        "memory/measured_state_bytes": model_state.bytes,
        "data/labels_used": len(loaders["train"].dataset) + len(loaders["val"].dataset),  # val picks the epoch
        "time/fit_seconds": fit_seconds,
        "throughput/train_samples_per_s": throughput.samples_per_s,
        "train/epochs": trainer.current_epoch,
        "val/best_loss": best.best_score,
    }
    mlflow.log_metrics({k: v for k, v in metrics.items() if not k.startswith("test/")})
    mlflow.set_tag("precision", trainer.precision)
    mlflow.set_tag("device", str(device))
    mlflow.set_tag("optimizer", type(optimizer).__name__)  # e.g. LoraFAOptimizer, whatever trainer.optimizer says
    return FitResult(metrics=metrics, history=history.rows, predictions=module.test_predictions(), device=device.type)


def _shared_out(train: DataLoader, trainer: pl.Trainer, seed: int) -> DataLoader:
    """The training loader of one process of a distributed fit: its share of each epoch, reshuffled per epoch.

    Validation and test stay whole in every process (Lightning's own sharding is off), so the
    epoch each process picks and the test metrics are exactly those of a one-device run.
    """
    sampler = DistributedSampler(train.dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=True, seed=seed)
    return DataLoader(train.dataset, batch_size=train.batch_size, sampler=sampler, num_workers=train.num_workers)
