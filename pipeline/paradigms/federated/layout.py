"""A model's floating-point state (parameters and normalisation statistics) as one flat vector.

Updates travel as one vector rather than a dict of tensors: loading, encoding, byte counting
and aggregation are then one tensor operation each, which keeps the per-client cost of the
simulation small. Integer buffers (BatchNorm's batch counter) stay on each side: nothing
reads them when a momentum is set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class StateLayout:
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    is_param: tuple[
        bool, ...
    ]  # False: a buffer (running mean / variance), averaged but never given to a server optimizer

    @classmethod
    def of(cls, model: nn.Module) -> "StateLayout":
        params = dict(model.named_parameters())
        entries = [(k, t.shape) for k, t in model.state_dict().items() if t.is_floating_point()]
        return cls(tuple(k for k, _ in entries), tuple(s for _, s in entries), tuple(k in params for k, _ in entries))

    @property
    def sizes(self) -> list[int]:
        return [s.numel() for s in self.shapes]

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def param_mask(self) -> torch.Tensor:
        """True at the vector's positions that hold trainable parameters."""
        return torch.cat([torch.full((n,), p) for n, p in zip(self.sizes, self.is_param)])

    def tensors_of(self, model: nn.Module) -> list[torch.Tensor]:
        """The model's own tensors in layout order: writing into them changes the model."""
        state = model.state_dict(keep_vars=False)
        return [state[name] for name in self.names]

    @torch.no_grad()
    def bind_flat(self, model: nn.Module) -> torch.Tensor:
        """Move the model's floating-point state into one flat vector and return it.

        Each parameter and buffer becomes a view of that vector (as FSDP's flat parameters do),
        so setting all the weights is one copy and reading them is one clone. Parameters stay the
        same objects, so optimizers built before or after keep working.
        """
        tensors = self.tensors_of(model)
        flat = self.flatten(tensors).to(tensors[0].device)
        params = dict(model.named_parameters())
        for name, view in zip(self.names, self.views(flat)):
            if name in params:
                params[name].data = view
            else:
                owner, _, leaf = name.rpartition(".")
                model.get_submodule(owner)._buffers[leaf] = view
        return flat

    def flatten(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.detach().reshape(-1) for t in tensors]).float()

    def views(self, vector: torch.Tensor) -> list[torch.Tensor]:
        return [part.view(shape) for part, shape in zip(vector.split(self.sizes), self.shapes)]
