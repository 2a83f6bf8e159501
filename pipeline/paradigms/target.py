"""What the target-task stages (transfer, finetune, scratch) share.

They all train on the same scarce target task and test on the same target test split, so
their runs line up side by side. Each writes, besides its runs:

- ``plots/<stage>/history.csv``: per variant and epoch, train/val loss and val accuracy
  (``dvc plots`` draws the variants of all three stages on one chart);
- ``plots/<stage>/memory.csv``: per variant, trainable parameters and estimated training memory.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.prepared import TaskData, load_task
from pipeline.tracking.outputs import write_csv
from pipeline.training.runner import FitResult

MEMORY_COLUMNS = (
    "params/trainable", "params/total", "memory/grads_bytes", "memory/optimizer_bytes",
    "memory/estimated_train_bytes", "memory/peak_bytes", "model/checkpoint_bytes",
)


def load_target(data_dir: Path) -> TaskData:
    return load_task(Path(data_dir) / "target.npz")


def write_target_plots(plots_dir: Path, runs: dict[str, dict], results: dict[str, FitResult]) -> None:
    history = [{"variant": variant, **row} for variant, result in results.items() for row in result.history]
    write_csv(Path(plots_dir) / "history.csv", history)
    write_csv(
        Path(plots_dir) / "memory.csv",
        [{"variant": variant, **{key: entry[key] for key in MEMORY_COLUMNS}} for variant, entry in runs.items()],
    )
