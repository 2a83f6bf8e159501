"""Many clients' local trainings as one batched computation (``federated.batched``).

Every client trains the same architecture, so a round's clients can train side by side: each weight
tensor is stacked over the clients (a leading client axis), and ``torch.func.vmap`` over
``torch.func.functional_call`` runs every client's forward and backward of a step as one call. One
optimizer over the stacked tensors is every client's own optimizer at once: SGD, Adam and AdamW work
entry by entry, and every client starts from a fresh state and steps in lockstep, so each client's
slice sees exactly the updates it would see alone. A client that has run out of batches is copied
out at its last step; its slice may drift afterwards and is never read.

Against clients trained one after another the weights agree up to floating-point order: clients whose batches
differ in size at a step compute in separate groups (no padding), so batch norm's statistics are each
client's own. Dropout draws each client's masks from the same seeded generator in another order: the
same distribution, not the same numbers. What cannot batch is listed by :func:`cannot_batch`; such a run
trains its clients one after another.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Iterator, Optional

import torch
from torch.func import functional_call, vmap

from pipeline.paradigms.federated.wire import to_bytes
from pipeline.training.clock import now
from pipeline.training.in_memory import TrainingPass
from pipeline.training.lightning_module import classification_loss
from pipeline.training.optimizers import build_optimizer

if TYPE_CHECKING:
    from pipeline.paradigms.federated.client import Client, ClientHalf, LocalTrainer


def cannot_batch(objective: ClientHalf, precision: str) -> Optional[str]:
    """Why clients with this local objective and precision cannot train as one computation (None: they can)."""
    if objective.not_batched:
        return objective.not_batched
    if precision == "16-mixed":
        return "16-mixed precision's gradient scaler would skip every client's step when one client's overflows"
    return None


class BatchedClients:
    """Trains groups of up to ``clients_per_batch`` clients of ``trainer`` (its model, optimizer settings,
    batch size and local objective) at once."""

    def __init__(self, trainer: LocalTrainer, clients_per_batch: int):
        self.trainer = trainer
        self.clients_per_batch = clients_per_batch
        model = trainer.model
        trains = {name: p.requires_grad for name, p in model.named_parameters()}
        self.entries = [
            (name, shape, trains.get(name)) for name, shape in zip(trainer.layout.names, trainer.layout.shapes)
        ]
        # integer buffers (batch norm's step counter) are not client state: one shared copy, as in the sequential engine
        self.counters = {name: b for name, b in model.named_buffers() if not b.is_floating_point()}
        self.params: list[torch.Tensor] = []  # the stacked tensors that train: what the local objective sees
        self._room: Optional[torch.Tensor] = None

    def rounds(
        self, clients: list[Client], message: bytes, epochs: int, generators: list[torch.Generator]
    ) -> Iterator[tuple[Client, bytes, TrainingPass]]:
        """What :meth:`LocalTrainer.rounds <pipeline.paradigms.federated.client.LocalTrainer.rounds>` gives, each
        client's reply to ``message`` and its pass, from groups of clients trained at once."""
        trainer = self.trainer
        start, extras = trainer.unpack(message)
        for client in clients:
            trainer.objective.on_message(trainer, client, extras)
        order, weights, passes = self.train(clients, start, epochs, generators)
        for k, row, done in zip(order, weights, passes):
            client = clients[k]
            yield client, to_bytes(trainer.encode(client, row, start) + trainer.objective.reply(trainer, client)), done

    def train(
        self, clients: list[Client], start: torch.Tensor, epochs: int, generators: list[torch.Generator]
    ) -> tuple[list[int], torch.Tensor, list[TrainingPass]]:
        """Each client's weights after ``epochs`` local epochs from ``start`` (rows, on the CPU, valid until the
        next call) and its pass, in the order trained: the first list holds each row's position in ``clients``."""
        # by size: clients of one size make batches of the same sizes at every step, so a group of them computes
        # in one call on slices of the stacked weights, not on copies of some of their rows
        order = sorted(range(len(clients)), key=lambda k: len(clients[k]))
        weights = self._rows(len(clients))
        passes: list[TrainingPass] = []
        size = self.clients_per_batch
        for lo in range(0, len(order), size):
            chosen = order[lo : lo + size]
            rows = weights[lo : lo + len(chosen)]
            passes += self._train_group(
                [clients[k] for k in chosen], start, epochs, [generators[k] for k in chosen], rows
            )
        return order, weights.cpu(), passes

    def _rows(self, clients: int) -> torch.Tensor:
        """Room for the clients' weights, kept from round to round: fresh memory of this size (100 MB for 1,000
        clients of the default model) costs more to touch the first time than the round's training."""
        if self._room is None or len(self._room) < clients:
            self._room = torch.empty(clients, self.trainer.layout.numel, device=self.trainer.device)
        return self._room[:clients]

    def _train_group(
        self,
        clients: list[Client],
        start: torch.Tensor,
        epochs: int,
        generators: list[torch.Generator],
        rows: torch.Tensor,
    ) -> list[TrainingPass]:
        """Trains ``clients`` side by side; writes their weights into ``rows`` (laid out as the weights vector)."""
        trainer = self.trainer
        started = now(trainer.device)
        n = len(clients)
        state = self._stacked(start.to(trainer.device), n)
        self.params = [state[name] for name, _, trains in self.entries if trains]
        # fused: one pass over each stacked tensor per step, several times faster here than torch's default (fused
        # optimizers are right for contiguous tensors only: on CPU, torch 2.13 silently misupdates strided ones)
        optimizer = build_optimizer(self.params, trainer.module.trainer_cfg, fused=True)
        plans = [
            [take for _ in range(epochs) for take in client.batch_indices(trainer.batch_size, g)]
            for client, g in zip(clients, generators)
        ]
        steps = max(len(plan) for plan in plans)
        finished_early = [k for k, plan in enumerate(plans) if len(plan) < steps]
        saved = torch.empty(len(finished_early), rows.shape[1], device=rows.device)  # their state drifts afterwards
        loss_sums = torch.zeros(n, device=trainer.device)
        trainer.module.train()
        trainer.objective.on_train_start(self)
        step_losses = vmap(self._loss, randomness="different")
        with trainer.fabric.autocast():
            for step in range(steps):
                total = self._step_loss(state, clients, plans, step, step_losses, loss_sums)
                extra = trainer.objective.penalty(self.params)
                optimizer.zero_grad(set_to_none=True)
                (total if extra is None else total + extra).backward()
                optimizer.step()
                if not trainer.state_bytes:
                    trainer.state_bytes = self._state_bytes(state, optimizer)
                for i, k in enumerate(finished_early):
                    if len(plans[k]) == step + 1:
                        self._copy_out(state, saved[i : i + 1], k)
        self._copy_out(state, rows)
        rows[finished_early] = saved
        seconds = (now(trainer.device) - started) / n  # the group's compute, shared out
        losses = (loss_sums.cpu() / torch.tensor([len(plan) for plan in plans])).tolist()
        return [TrainingPass(seconds, loss) for loss in losses]

    def _stacked(self, start: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
        """``start``'s tensors, each repeated over a leading axis of ``n`` clients, in its own memory."""
        state = {}
        for (name, shape, trains), part in zip(self.entries, start.split([s.numel() for _, s, _ in self.entries])):
            tensor = part.view(shape).expand(n, *shape).clone()
            state[name] = tensor.requires_grad_() if trains else tensor
        return state

    def _state_bytes(self, state: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> int:
        """One client's share of the model state training holds (weights, gradients, optimizer state), as the
        sequential engine measures it for its one model."""
        tensors = [*state.values(), *(p.grad for p in self.params if p.grad is not None)]
        tensors += [v for per_param in optimizer.state.values() for v in per_param.values() if torch.is_tensor(v)]
        clients = len(next(iter(state.values())))
        return sum(t.numel() * t.element_size() for t in tensors) // clients

    @torch.no_grad()
    def _copy_out(self, state: dict[str, torch.Tensor], out: torch.Tensor, k: Optional[int] = None) -> None:
        """Every client's weights as the rows of ``out``, or client ``k``'s as its one row."""
        parts = [tensor.detach() if k is None else tensor.detach()[k : k + 1] for tensor in state.values()]
        torch.cat([part.reshape(len(out), -1) for part in parts], 1, out=out)

    def _loss(self, state: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One client's loss on one batch (the classification loss the sequential engine steps on)."""
        return classification_loss(functional_call(self.trainer.model, state | self.counters, (X,)), y)

    def _step_loss(self, state, clients, plans, step, step_losses, loss_sums) -> torch.Tensor:
        """The sum of every training client's loss at ``step``: clients with equal batch sizes in one call."""
        groups = defaultdict(list)
        for k, plan in enumerate(plans):
            if step < len(plan):
                groups[len(plan[step])].append(k)
        total = torch.zeros((), device=loss_sums.device)
        for members in groups.values():
            X = torch.stack([clients[k].X[plans[k][step]] for k in members])
            y = torch.stack([clients[k].y[plans[k][step]] for k in members])
            if len(members) == len(plans):
                losses = step_losses(state, X, y)
            else:
                # the group's weights: views of their rows when they are neighbours, else copies; its buffers, which
                # the forward pass updates in place, always in a copy written back after
                neighbours = members[-1] - members[0] == len(members) - 1
                rows = slice(members[0], members[-1] + 1) if neighbours else torch.tensor(members, device=X.device)
                part = {
                    name: state[name][rows].clone() if trains is None else state[name][rows]
                    for name, _, trains in self.entries
                }
                losses = step_losses(part, X, y)
                with torch.no_grad():  # the group's batch-norm statistics moved in its copy
                    for name, _, trains in self.entries:
                        if trains is None:
                            state[name][rows] = part[name]
            loss_sums[members] += losses.detach().float()
            total = total + losses.sum()
        return total
