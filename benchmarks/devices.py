"""What the GPU-path and scale benchmarks share: ``--device``, the trainer params that put the pipeline
on it, its autocast context, a hand-written training step, synthetic images.

``--device auto`` (the default) is ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; the
same script runs unchanged on either.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np
import torch
from torch import nn


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: cuda when torch.cuda.is_available(), else cpu",
    )


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "--device cuda: torch.cuda.is_available() is False on this machine (no GPU, or a CPU build of torch)"
        )
    return torch.device(name)


def device_overrides(device: torch.device) -> list[str]:
    """``--set`` assignments that put the pipeline's Trainer and Fabric on ``device`` (one device, not all GPUs)."""
    return [f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}", "trainer.devices=1"]


def describe(device: torch.device) -> str:
    """The device in words, for the first line a benchmark prints."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    return f"cpu ({torch.get_num_threads()} threads), torch {torch.__version__}"


def model_words(model_cfg) -> str:
    """``mlp [128, 128]``, ``cnn [32, 64, 128]``: the backbone and its widths (hidden sizes, or channels)."""
    return f"{model_cfg.backbone} {model_cfg.hidden_sizes if model_cfg.backbone == 'mlp' else model_cfg.channels}"


def autocast(precision: str, device: torch.device):
    """The autocast context of ``trainer.precision`` (on CPU, 16-mixed runs as bf16-mixed, as Lightning does)."""
    if precision == "32":
        return contextlib.nullcontext()
    half = torch.float16 if precision == "16-mixed" and device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=half)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling where Lightning uses it: fp16 on a GPU (on CPU, 16-mixed runs as bf16, unscaled)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "16-mixed" and device.type == "cuda")


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    xb: torch.Tensor,
    yb: torch.Tensor,
    precision: str,
    device: torch.device,
) -> torch.Tensor:
    """One hand-written training step (forward, cross-entropy, backward, optimizer step) at ``precision``; the loss."""
    with autocast(precision, device):
        loss = nn.functional.cross_entropy(model(xb), yb)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def synthetic_images(samples: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 inputs in [0, 1) of ``shape`` and uniform labels ``0..classes-1``: for timing, not learning."""
    rng = np.random.default_rng(seed)
    return rng.random((samples, *shape), dtype=np.float32), rng.integers(0, classes, size=samples, dtype=np.int64)
