"""Fit a classifier on a task, restore its best epoch, test it and log everything to MLflow.

Shared by every paradigm that trains a classifier, so all runs report the same metrics
(the tracking contract) and can be compared side by side.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from pipeline.config.schema import TrainerConfig
from pipeline.data.prepared import TaskData
from pipeline.memory import PeakMemory, estimate_training_memory
from pipeline.models.lightning_module import ClassificationModule
from pipeline.seeding import seed_everything
from pipeline.tracking import figures
from pipeline.training.callbacks import EpochHistory, Throughput
from pipeline.training.trainer import build_trainer

MONITOR = "val/loss"


@dataclass
class FitResult:
    metrics: dict[str, float]
    history: list[dict[str, float]]
    y_true: np.ndarray
    y_pred: np.ndarray


def make_loaders(task: TaskData, cfg: TrainerConfig, seed: int) -> dict[str, DataLoader]:
    def loader(split: str) -> DataLoader:
        data = TensorDataset(torch.from_numpy(task.X[split]), torch.from_numpy(task.y[split]))
        shuffle = split == "train"
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(data, batch_size=cfg.batch_size, shuffle=shuffle, generator=generator, num_workers=cfg.num_workers)

    return {split: loader(split) for split in ("train", "val", "test")}


def fit_and_test(
    module: ClassificationModule,
    task: TaskData,
    cfg: TrainerConfig,
    seed: int,
    run: mlflow.ActiveRun,
    label: str,
    extra_callbacks: Sequence[pl.Callback] = (),
) -> FitResult:
    seed_everything(seed)
    loaders = make_loaders(task, cfg, seed)
    history, throughput = EpochHistory(label), Throughput()
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-") as root:
        best = ModelCheckpoint(dirpath=root, monitor=MONITOR, mode="min", save_top_k=1, save_weights_only=True)
        callbacks: list[pl.Callback] = [history, throughput, best, *extra_callbacks]
        if cfg.early_stopping_patience:
            callbacks.append(EarlyStopping(monitor=MONITOR, mode="min", patience=cfg.early_stopping_patience))
        trainer = build_trainer(cfg, run, callbacks, root)
        with PeakMemory(trainer.strategy.root_device) as peak:
            started = time.perf_counter()
            trainer.fit(module, loaders["train"], loaders["val"])
            fit_seconds = time.perf_counter() - started
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    trainer.test(module, loaders["test"], verbose=False)

    optimizer = module.configure_optimizers()  # a fresh one over what trained: the estimator reads its kind and groups
    estimate = estimate_training_memory(module, optimizer, trainer.precision)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics |= estimate.as_metrics() | {
        "memory/peak_bytes": peak.peak_bytes,
        "time/fit_seconds": fit_seconds,
        "throughput/train_samples_per_s": throughput.samples_per_s,
        "train/epochs": trainer.current_epoch,
        "val/best_loss": float(best.best_model_score),
    }
    mlflow.log_metrics({k: v for k, v in metrics.items() if not k.startswith("test/")})
    mlflow.set_tag("precision", trainer.precision)
    mlflow.set_tag("device", str(trainer.strategy.root_device))
    mlflow.set_tag("optimizer", type(optimizer).__name__)  # e.g. LoraFAOptimizer, whatever trainer.optimizer says

    y_true = torch.cat(module.test_targets).numpy()
    y_pred = torch.cat(module.test_predictions).numpy()
    matrix = np.zeros((task.num_classes, task.num_classes), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    fig = figures.confusion_figure(matrix, task.classes, f"{label}: test, acc {metrics['test/acc']:.3f}")
    mlflow.log_figure(fig, "plots/confusion_matrix.png")
    figures.close(fig)
    return FitResult(metrics=metrics, history=history.rows, y_true=y_true, y_pred=y_pred)
