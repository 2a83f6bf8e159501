"""What the target-task stages (transfer, finetune, scratch) share: the plot data each writes.

They all train on the same scarce target task and test on the same target test split, so
their runs line up side by side. Each writes, besides its runs:

- ``plots/<stage>/history.csv``: per variant and epoch, train/val loss and val accuracy
  (``dvc plots`` draws the variants of all three stages on one chart);
- ``plots/<stage>/memory.csv``: per variant, trainable parameters and estimated training memory.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.tracking.contract import Trained
from pipeline.tracking.outputs import write_csv

MEMORY_COLUMNS = (
    "params/trainable", "params/total", "memory/grads_bytes", "memory/optimizer_bytes",
    "memory/estimated_train_bytes", "memory/peak_bytes", "model/size_bytes",
)  # fmt: skip


def write_target_plots(plots_dir: Path, runs: dict[str, dict], trained: dict[str, Trained]) -> None:
    history = [{"variant": variant, **row} for variant, done in trained.items() for row in done.history]
    write_csv(Path(plots_dir) / "history.csv", history)
    write_csv(
        Path(plots_dir) / "memory.csv",
        [{"variant": variant, **{key: entry[key] for key in MEMORY_COLUMNS}} for variant, entry in runs.items()],
    )
