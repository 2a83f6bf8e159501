"""The prepared datasets on disk (``data/prepared/``), written by ``prepare`` and read by every later stage.

- ``source.npz`` / ``target.npz``: the abundant source task and the scarce target task;
- ``full.npz``: all classes, for multi-task, federated and active learning; its test split
  holds no example the base model trained or validated on, so stages that start from the
  base are tested on data it never saw;
- ``federated.npz``: client id of each ``full`` training example, per partition scheme
  (``iid``, ``dirichlet`` label skew, ``shards``: a few label-sorted shards per client);
- ``active_learning.npz``: the initial labelled seed set and the unlabelled pool
  (positions in ``full``'s training split);
- ``scaling.npz``: how inputs were scaled (:mod:`pipeline.data.scaling`), for inference.

Each task file also carries its trivial baselines (:mod:`pipeline.data.baselines`) and any warning
``prepare`` raised about it (e.g. domain-shift noise that buries the signal), so the stages that
train on it can judge their results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from pipeline.errors import DataError
from pipeline.io import write_npz

SPLITS = ("train", "val", "test")
COLUMN_PREFIX = "column_"  # column_<name>_<split>: an extra label column
BASELINE_PREFIX = "baseline_"  # baseline_<name>: a trivial baseline's test accuracy


@dataclass
class TaskData:
    """Inputs, labels (``0..K-1``) and raw-dataset row ids for each split of one task.

    ``columns`` holds the dataset's extra label columns (``data.task_columns``), raw values per split;
    ``baselines`` the trivial baselines' test accuracy; ``notes`` what ``prepare`` warned about the task.
    """

    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    ids: dict[str, np.ndarray]
    classes: np.ndarray  # original label of each class index
    columns: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source: Optional[Path] = None  # the prepared file it was read from (what runs log as their dataset)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X["train"].shape[1:])

    def class_counts(self) -> dict[str, list[int]]:
        return {s: np.bincount(self.y[s], minlength=self.num_classes).tolist() for s in SPLITS}


def save_task(path: str | Path, task: TaskData) -> None:
    arrays = {"classes": task.classes}
    for split in SPLITS:
        arrays |= {f"X_{split}": task.X[split], f"y_{split}": task.y[split], f"ids_{split}": task.ids[split]}
        arrays |= {f"{COLUMN_PREFIX}{name}_{split}": values[split] for name, values in task.columns.items()}
    arrays |= {f"{BASELINE_PREFIX}{name}": np.asarray(value) for name, value in task.baselines.items()}
    write_npz(path, **arrays, notes=np.array(task.notes, dtype=str))


def load_task(path: str | Path) -> TaskData:
    archive = read_arrays(path)
    expected = ["classes"] + [f"{k}_{s}" for s in SPLITS for k in ("X", "y", "ids")]
    missing = [key for key in expected if key not in archive]
    if missing:
        raise DataError(f"{path}: not a prepared task file (missing {', '.join(missing)}); re-run `dvc repro prepare`")
    baselines, notes = _judgement(archive)
    return TaskData(
        X={s: archive[f"X_{s}"] for s in SPLITS},
        y={s: archive[f"y_{s}"] for s in SPLITS},
        ids={s: archive[f"ids_{s}"] for s in SPLITS},
        classes=archive["classes"],
        columns={
            name: {s: archive[f"{COLUMN_PREFIX}{name}_{s}"] for s in SPLITS}
            for name in sorted(
                {key.removeprefix(COLUMN_PREFIX).rpartition("_")[0] for key in archive if key.startswith(COLUMN_PREFIX)}
            )
        },
        baselines=baselines,
        notes=notes,
        source=Path(path),
    )


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a prepared ``.npz`` file, with a clear error if the file is not there."""
    with _opened(path) as archive:
        return {key: archive[key] for key in archive.files}


def read_judgement(path: str | Path) -> tuple[dict[str, float], tuple[str, ...]]:
    """A task file's baselines and notes alone, without reading its inputs."""
    with _opened(path) as archive:
        return _judgement(archive)


def _opened(path: str | Path):
    """The prepared ``.npz`` at ``path``, opened lazily, with a clear error if the file is not there."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared data not found; run `dvc repro prepare` first")
    return np.load(path, allow_pickle=False)


def _judgement(archive: Mapping[str, np.ndarray]) -> tuple[dict[str, float], tuple[str, ...]]:
    """The baselines and notes among a task file's arrays (a dict of them, or the open file: only these are read)."""
    baselines = {
        key.removeprefix(BASELINE_PREFIX): float(archive[key]) for key in archive if key.startswith(BASELINE_PREFIX)
    }
    return baselines, tuple(str(note) for note in archive["notes"]) if "notes" in archive else ()
