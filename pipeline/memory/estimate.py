"""Model-state memory of training, from the parameter count (activations are not included).

The breakdown, for N parameters of which T train:

- ``weights_bytes``: the weights as stored (N × 4 bytes in fp32), plus the module's buffers
  (e.g. BatchNorm running statistics);
- ``grads_bytes``: one gradient per trainable parameter, in the parameter's dtype (T × 4);
- ``optimizer_bytes``: state per trainable parameter: none for plain SGD, one buffer for
  SGD with momentum, two for Adam/AdamW (three with amsgrad) and for PEFT's LoRA-FA
  optimizer (AdamW-based). Parameters an optimizer holds but that are frozen get no state.

Mixed precision (``16-mixed``, ``bf16-mixed``) runs under ``torch.autocast``: the weights, their
gradients and the optimizer state stay fp32, so the model state is the same as in fp32. Each
forward pass casts the weights it uses to 2-byte copies, kept until the backward pass has used
them: ``autocast_copies_bytes`` (N × 2) reports them apart, transient like activations, not part
of ``total_bytes``. (The "16 bytes per parameter" of mixed precision counts half-precision
weights kept for good beside fp32 masters, as Apex's O2 or DeepSpeed's fp16 do; Lightning does not.)

``rule_12n_bytes`` is the common rule of thumb of 12 bytes per parameter, for comparison.
Frozen parameters cost weights only: no gradient and no optimizer state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

MIXED = {"16-mixed": 2, "bf16-mixed": 2}


@dataclass(frozen=True)
class MemoryEstimate:
    total_params: int
    trainable_params: int
    weights_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    autocast_copies_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """The model state: what stays allocated between steps."""
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes

    @property
    def rule_12n_bytes(self) -> int:
        return 12 * self.total_params

    def as_metrics(self) -> dict[str, float]:
        """The tracking contract's names."""
        return {
            "params/total": self.total_params,
            "params/trainable": self.trainable_params,
            "memory/estimated_train_bytes": self.total_bytes,
            "memory/weights_bytes": self.weights_bytes,
            "memory/autocast_copies_bytes": self.autocast_copies_bytes,
            "memory/grads_bytes": self.grads_bytes,
            "memory/optimizer_bytes": self.optimizer_bytes,
            "memory/rule_12n_bytes": self.rule_12n_bytes,
        }

    def as_dict(self) -> dict[str, int]:
        return asdict(self) | {"total_bytes": self.total_bytes, "rule_12n_bytes": self.rule_12n_bytes}


def optimizer_states_per_param(optimizer: torch.optim.Optimizer) -> int:
    """How many parameter-sized buffers the optimizer keeps for each parameter it updates."""
    group = optimizer.param_groups[0]
    if isinstance(optimizer, torch.optim.SGD):
        return 1 if group.get("momentum", 0) else 0
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return 3 if group.get("amsgrad", False) else 2
    if type(optimizer).__name__ == "LoraFAOptimizer":  # peft.optimizers: AdamW's two moments (importing peft is slow)
        return 2
    raise ValueError(
        f"no memory rule for optimizer {type(optimizer).__name__}; known: SGD, Adam, AdamW, LoraFAOptimizer"
    )


def estimate_training_memory(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, precision: str
) -> MemoryEstimate:
    params = list(model.parameters())
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = [p for p in params if p.requires_grad]
    stored = sum(p.numel() * p.element_size() for p in params)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    total = sum(p.numel() for p in params)
    half = MIXED.get(str(precision))
    states = optimizer_states_per_param(optimizer)
    return MemoryEstimate(
        total_params=total,
        trainable_params=sum(p.numel() for p in trainable),
        weights_bytes=stored + buffers,
        autocast_copies_bytes=total * half if half else 0,
        grads_bytes=sum(p.numel() * p.element_size() for p in trainable),
        optimizer_bytes=states * sum(p.numel() * p.element_size() for p in trainable if id(p) in optimized),
    )
