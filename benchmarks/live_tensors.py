"""Benchmark: what counting live tensors costs a training step on the CPU (the ``measured peak``, issue 39).

The default MLP and the CNN (batch 64 of 8x8 digits-sized inputs, Adam, one thread) take ``--steps`` training
steps three ways, each ``--repeats`` times, in one process: plain; with every step counted
(:class:`~pipeline.memory.live_tensors.LiveTensorBytes` on throughout); and as the pipeline counts, inside
:class:`~pipeline.memory.PeakMemory` (its first three optimizer steps, then off). The table gives the median
milliseconds per step and each against plain, and the peak the pipeline's way measures against the model state
and one step's activations (and against its floor: the state without the gradients, which ``zero_grad`` releases
before each forward, plus the activations). The table is the one in docs/benchmarks.md.

    python -m benchmarks.live_tensors --csv benchmark-live-tensors.csv
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import show_table
from pipeline.config.schema import ModelConfig
from pipeline.memory import PeakMemory, model_state_bytes
from pipeline.memory.activations import SavedTensorBytes
from pipeline.memory.live_tensors import LiveTensorBytes
from pipeline.models.classifier import build_classifier


def timed_steps(step, steps: int) -> float:
    """Median milliseconds of ``steps`` calls of ``step``."""
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def training(backbone: str):
    """A fresh model, its Adam optimizer, a batch, and its training step (``step(True)`` counts its activations)."""
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(backbone=backbone, hidden_sizes=[128, 128], channels=[16, 32]), (8, 8), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(64, 8, 8), torch.randint(0, 10, (64,))
    saved = SavedTensorBytes(model)

    def step(count: bool = False) -> None:
        optimizer.zero_grad()
        with saved.counting() if count else contextlib.nullcontext():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    return model, optimizer, saved, step


def backbone_row(backbone: str, steps: int, repeats: int) -> dict:
    model, optimizer, saved, step = training(backbone)
    with PeakMemory(torch.device("cpu"), model) as peak:  # as a stage measures: from before the first step
        step(count=True)
        for _ in range(20):  # also the warm-up of the timings below
            step()
    state = model_state_bytes(model, [optimizer])
    grads = sum(p.grad.untyped_storage().nbytes() for p in model.parameters() if p.grad is not None)
    plain, every, pipeline = [], [], []
    for _ in range(repeats):  # interleaved, so that a busy moment of the machine hits all three alike
        plain.append(timed_steps(step, steps))
        with LiveTensorBytes([*model.parameters(), *model.buffers()]):
            every.append(timed_steps(step, steps))
        with PeakMemory(torch.device("cpu"), model):
            pipeline.append(timed_steps(step, steps))
    base, all_steps, first = statistics.median(plain), statistics.median(every), statistics.median(pipeline)
    return {
        "backbone": backbone,
        "plain ms/step": round(base, 3),
        "every step counted ms/step": round(all_steps, 3),
        "every step ×": round(all_steps / base, 2),
        "pipeline (first 3 steps) ms/step": round(first, 3),
        "pipeline ×": round(first / base, 2),
        "model state KiB": round(state / 1024, 1),
        "activations KiB": round(saved.bytes / 1024, 1),
        # when forward ends, Lightning's zero_grad(set_to_none) has released the gradients: the peak's floor
        "state − gradients + activations KiB": round((state - grads + saved.bytes) / 1024, 1),
        "measured peak KiB": round(peak.peak_bytes / 1024, 1),
        "peak / (state + activations)": round(peak.peak_bytes / (state + saved.bytes), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = pd.DataFrame([backbone_row(b, args.steps, args.repeats) for b in ("mlp", "cnn")])
    show_table(
        table, args.csv, f"Counting live tensors on the CPU: medians of {args.repeats} × {args.steps} steps, 1 thread"
    )


if __name__ == "__main__":
    main()
