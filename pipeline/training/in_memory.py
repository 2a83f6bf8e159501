"""Short trainings on tensors already in memory, many times per run, under Lightning Fabric.

Federated clients and active-learning rounds each train a small model for a few steps many
times in one run. Building a Lightning Trainer (or a model, a Fabric and an optimizer) per
training would cost more than the training, so one :class:`InMemoryTrainer` is built per
run. It drives the project's LightningModule (its loss and optimizer) on a Fabric device, so device
and precision still follow the ``trainer`` params. The step itself is a plain PyTorch step inside
Fabric's autocast: for these models Fabric's per-call wrappers cost as much as the step
(``benchmarks/inner_loop.py``); only a gradient scaler (``16-mixed``) goes through Fabric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
from lightning.fabric import Fabric
from torch import nn

from pipeline.config.schema import TrainerConfig
from pipeline.memory import model_state_bytes
from pipeline.memory.activations import ESTIMATED, MEASURED, SavedTensorBytes, predict_activation_bytes
from pipeline.tracking.contract import Trained
from pipeline.training.clock import now
from pipeline.training.lightning_module import ClassificationModule

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TrainingPass:
    seconds: float  # the training itself: the compute a simulation cannot avoid
    loss: float  # mean training loss over its batches (penalties excluded)


class Batches:
    """Shuffled mini-batches of ``self.X`` and ``self.y`` (tensors on the trainer's device)."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One shuffled pass."""
        for take in self.batch_indices(batch_size, generator):
            yield self.X[take], self.y[take]

    def batch_indices(self, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """The positions of one shuffled pass's batches; a lone last example joins the batch before (batch norm
        cannot train on one)."""
        order = torch.randperm(len(self), generator=generator).to(self.X.device)
        cuts = list(range(0, len(self), batch_size)) + [len(self)]
        if len(cuts) > 2 and cuts[-1] - cuts[-2] == 1:
            del cuts[-2]
        return [order[lo:hi] for lo, hi in zip(cuts, cuts[1:])]


@dataclass
class TensorSet(Batches):
    """Labelled examples to train on."""

    X: torch.Tensor
    y: torch.Tensor


PREDICT_CHUNK = 8192  # examples per forward pass when predicting (a pool of digits is one chunk)


class InMemoryTrainer:
    """The project's LightningModule on one Fabric device, trained on :class:`Batches` again and again.

    Subclasses add a term to each step's loss through :meth:`penalty` and change its gradients through
    :meth:`adjust_gradients`.
    """

    def __init__(self, model: nn.Module, num_classes: int, cfg: TrainerConfig, batch_size: int):
        self.precision = cfg.precision
        # short trainings take turns
        one_device = cfg.devices if isinstance(cfg.devices, list) and len(cfg.devices) == 1 else 1
        self.fabric = Fabric(accelerator=cfg.accelerator, devices=one_device, precision=cfg.precision)
        self.model = model
        self.module = ClassificationModule(model, num_classes, cfg)
        self.wrapped = self.fabric.setup_module(self.module)
        self.optimizer = self.fabric.setup_optimizers(self.module.configure_optimizers())
        self.batch_size = batch_size
        self.params = [p for p in model.parameters() if p.requires_grad]
        scaled = getattr(self.fabric.strategy.precision, "scaler", None) is not None
        self._backward = self.fabric.backward if scaled else torch.Tensor.backward
        self._step = self.optimizer.step if scaled else self.optimizer.optimizer.step
        # model state training holds (weights, gradients, optimizer state), measured after the first training
        self.state_bytes = 0
        # activation bytes of the first step that runs here, predicted and measured (pipeline.memory.activations)
        self.activations: dict[str, float] = {}

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    def trained(self, **measured: Any) -> Trained:
        """What this trainer trained, for the run contract; ``measured``: the run's own measurements and scores.

        Its activation bytes are those of the first step one of its trainings ran (a client's, or a round's); none
        when every step ran elsewhere (the batched clients' engine, without personalisation)."""
        measured["metrics"] = measured.get("metrics", {}) | self.activations
        if not self.activations:
            measured["cannot_have"] = measured.get("cannot_have", frozenset()) | {ESTIMATED, MEASURED}
        return Trained(
            module=self.model,
            optimizer=self.optimizer.optimizer,
            precision=self.precision,
            device=self.device,
            state_bytes=self.state_bytes,
            **measured,
        )

    def reset_optimizer(self) -> None:
        """Forget the optimizer's state (moments, momentum): the next training starts afresh."""
        self.optimizer.optimizer.state.clear()

    def train(
        self, data: Batches, generator: torch.Generator, epochs: Optional[int] = None, steps: Optional[int] = None
    ) -> TrainingPass:
        """``epochs`` passes over ``data``, or ``steps`` batches."""
        if not self.module.training:
            self.wrapped.train()  # walking the module tree costs as much as a small client's step: only after eval
        started = now(self.device)
        total, batches = torch.zeros((), device=self.device), 0
        raw = self.optimizer.optimizer
        with self.fabric.autocast():
            for batch in self._schedule(data, generator, epochs, steps):
                loss = self.module.loss(batch) if self.activations else self._measured_loss(batch)
                total += loss.detach()
                batches += 1
                extra = self.penalty()
                if extra is not None:
                    loss = loss + extra
                raw.zero_grad(set_to_none=True)
                self._backward(loss)
                self.adjust_gradients()
                self._step()
        mean_loss = float(total) / max(batches, 1)  # one device sync per training, not per step
        if not self.state_bytes and batches:
            self.state_bytes = model_state_bytes(self.module, [self.optimizer.optimizer])
        return TrainingPass(now(self.device) - started, mean_loss)

    def _measured_loss(self, batch: Batch) -> torch.Tensor:
        """The first step's loss, its activation bytes predicted from the batch's shapes and measured as it runs."""
        predicted = predict_activation_bytes(self.module, batch)
        meter = SavedTensorBytes(self.module)
        with meter.counting():
            loss = self.module.loss(batch)
        self.activations = {ESTIMATED: predicted, MEASURED: meter.bytes}
        return loss

    def penalty(self) -> Optional[torch.Tensor]:
        """A term added to every step's loss (e.g. FedProx's proximal term); none by default."""
        return None

    def adjust_gradients(self) -> None:
        """Change every step's gradients before the optimizer applies them (e.g. SCAFFOLD's correction); none by
        default."""

    def _schedule(
        self, data: Batches, generator: torch.Generator, epochs: Optional[int], steps: Optional[int]
    ) -> Iterator[Batch]:
        if epochs is not None:
            for _ in range(epochs):
                yield from data.batches(self.batch_size, generator)
            return
        done = 0
        while done < (steps or 0):
            for batch in data.batches(self.batch_size, generator):
                yield batch
                done += 1
                if done == steps:
                    return

    @torch.no_grad()
    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of the current weights (evaluation mode), on the CPU."""
        self.wrapped.eval()
        return self.forward_in_chunks(X)

    def forward_in_chunks(self, X: torch.Tensor) -> torch.Tensor:
        """The module's outputs for ``X``, :data:`PREDICT_CHUNK` examples at a time, on the CPU.

        In chunks so that scoring a large pool needs the activations of one chunk, not of the whole pool.
        """
        with self.fabric.autocast():
            chunks = [self.module(part.to(self.device)).float().cpu() for part in X.split(PREDICT_CHUNK)]
        return torch.cat(chunks)
