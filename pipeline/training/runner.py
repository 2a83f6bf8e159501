"""Fit a model with Lightning, restore its best epoch and test it, measuring what the run contract logs.

Shared by every paradigm that trains through Lightning (a classifier or a multi-task network). The
LightningModule logs its own scores per epoch and on the test split; :func:`fit_and_test` hands the
rest (what trained, its memory, time and throughput) to :meth:`pipeline.tracking.contract.TrackedRun.finish`.
"""

from __future__ import annotations

import tempfile
import time
from contextvars import ContextVar
from typing import Callable, Optional, Protocol, Sequence

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from pipeline.config.schema import TrainerConfig
from pipeline.memory import PeakMemory
from pipeline.memory.activations import ESTIMATED as ACTIVATIONS_ESTIMATED
from pipeline.memory.activations import MEASURED as ACTIVATIONS_MEASURED
from pipeline.memory.activations import first_batch, predict_activation_bytes
from pipeline.seeding import seed_everything
from pipeline.tracking.contract import Trained
from pipeline.training.callbacks import ActivationProbe, BestWeights, EpochHistory, ModelStateProbe, Throughput
from pipeline.training.trainer import build_trainer

MONITOR = "val/loss"
# Callbacks that whoever runs a stage adds to each of its fits (a sweep's pruning), made fresh per
# fit, without threading them through every paradigm's signature.
FIT_CALLBACKS: ContextVar[Optional[Callable[[], Sequence[pl.Callback]]]] = ContextVar("fit_callbacks", default=None)


class TrackedModule(Protocol):
    """What the runner needs of a LightningModule besides its hooks (ClassificationModule, MultiTaskModule have it)."""

    history_keys: tuple[str, ...]  # the epoch metrics kept for learning-curve plots

    def loss(self, batch) -> torch.Tensor:
        """A batch's training loss (the activation-memory prediction runs it on the meta device)."""

    def test_predictions(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per output, the true and predicted class of every test example of the last test run."""


def make_loaders(
    X: dict[str, np.ndarray], y: dict[str, np.ndarray], cfg: TrainerConfig, seed: int
) -> dict[str, DataLoader]:
    """Loaders of each split's inputs and labels (one label per example, or one per task).

    An epoch whose last training batch would hold one example leaves it out (a different one each epoch, the
    order being shuffled): batch norm cannot train on a single example."""

    def loader(split: str) -> DataLoader:
        data = TensorDataset(torch.from_numpy(X[split]), torch.from_numpy(y[split]))
        shuffle = split == "train"
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        lone = shuffle and len(data) % cfg.batch_size == 1 and len(data) > 1
        return DataLoader(
            data,
            batch_size=cfg.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=cfg.num_workers,
            drop_last=lone,
        )

    return {split: loader(split) for split in ("train", "val", "test")}


def fit_and_test(
    module: pl.LightningModule,  # and a TrackedModule
    loaders: dict[str, DataLoader],
    cfg: TrainerConfig,
    seed: int,
    run: mlflow.ActiveRun,
    label: str,
    extra_callbacks: Sequence[pl.Callback] = (),
) -> Trained:
    """Fit on ``loaders["train"]`` (early-stopped on validation loss), restore the best epoch, test it."""
    seed_everything(seed)
    history, throughput, model_state = EpochHistory(label, module.history_keys), Throughput(), ModelStateProbe()
    best, activations = BestWeights(MONITOR), ActivationProbe()
    predicted = predict_activation_bytes(module, first_batch(loaders["train"].dataset, cfg.batch_size))
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-") as root:
        around = FIT_CALLBACKS.get()
        callbacks: list[pl.Callback] = [
            history,
            throughput,
            model_state,
            activations,
            best,
            *extra_callbacks,
            *(around() if around else ()),
        ]
        if cfg.early_stopping_patience:
            callbacks.append(EarlyStopping(monitor=MONITOR, mode="min", patience=cfg.early_stopping_patience))
        trainer = build_trainer(cfg, run, callbacks, root)
        if trainer.world_size > 1:
            loaders = loaders | {"train": _shared_out(loaders["train"], trainer, seed)}
        device = trainer.strategy.root_device
        with PeakMemory(device, module) as peak:
            started = time.perf_counter()
            trainer.fit(module, loaders["train"], loaders["val"])
            fit_seconds = time.perf_counter() - started
    if best.state is None:  # no validation ran: there is no epoch to restore, so nothing to report
        raise RuntimeError(f"{label}: the fit ran no validation epoch, so it has no best epoch to restore")
    module.load_state_dict(best.state)
    trainer.test(module, loaders["test"], verbose=False)

    test = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    return Trained(
        module=module,
        optimizer=module.configure_optimizers(),  # a fresh one over what trained: the estimator reads its kind, groups
        precision=trainer.precision,
        device=device,
        peak_bytes=peak.peak_bytes,
        state_bytes=model_state.bytes,
        labels_used=labelled(loaders["train"].dataset) + labelled(loaders["val"].dataset),  # val picks the epoch
        fit_seconds=fit_seconds,
        samples_per_s=throughput.samples_per_s,
        metrics=test
        | {
            "train/epochs": trainer.current_epoch,
            "val/best_loss": best.best_score,
            ACTIVATIONS_ESTIMATED: predicted,
            ACTIVATIONS_MEASURED: activations.bytes,
        },
        predictions=module.test_predictions(),
        history=history.rows,
        logged=frozenset(test),  # Lightning's logger logged the test scores
    )


def labelled(data: Dataset) -> int:
    """Examples of ``data`` whose label training saw: all, but those marked unlabelled (a negative class index,
    as a distilled student's examples only the teacher labelled)."""
    if isinstance(data, TensorDataset) and len(data.tensors) > 1 and not data.tensors[1].is_floating_point():
        labels = data.tensors[1].reshape(len(data), -1)
        return int((labels >= 0).all(dim=1).sum())
    return len(data)


def _shared_out(train: DataLoader, trainer: pl.Trainer, seed: int) -> DataLoader:
    """The training loader of one process of a distributed fit: its share of each epoch, reshuffled per epoch.

    Validation and test stay whole in every process (Lightning's own sharding is off), so the
    epoch each process picks and the test metrics are exactly those of a one-device run.
    """
    sampler = DistributedSampler(
        train.dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=True, seed=seed
    )
    return DataLoader(train.dataset, batch_size=train.batch_size, sampler=sampler, num_workers=train.num_workers)
