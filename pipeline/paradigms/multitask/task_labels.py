"""Labels of the multi-task tasks, derived from a prepared dataset by each task's definition.

- ``class``: the dataset's own label;
- ``parity``: ``even`` / ``odd`` of an integer label;
- ``threshold``: ``< t`` / ``>= t`` of a numeric label;
- ``column``: an extra label column the dataset declared (``data.task_columns``).

Every task must have at least two classes, and each of them in the training split; a
definition that gives fewer, or names a column the prepared data does not hold, fails
with the task's name and why. A task that splits the examples exactly as an earlier one does
(parity on two classes is the class) is left out with a warning naming both (:func:`distinct_tasks`):
a second head on the same labels would compare nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pipeline.data.prepared import SPLITS, TaskData
from pipeline.errors import DataError
from pipeline.paradigms.multitask.config import TASK_NAME, TaskSpec


@dataclass(frozen=True)
class TaskLabels:
    name: str
    y: dict[str, np.ndarray]  # per split, class indices 0..K-1
    classes: np.ndarray  # what each class index stands for

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def default_tasks(data: TaskData, label_column: str) -> list[TaskSpec]:
    """The tasks when ``multitask.tasks`` names none: the class, under the label column's name (``class`` where that is
    no task name), and its parity where the class labels are integers (:func:`distinct_tasks` drops it where it is
    the class again)."""
    name = label_column if re.fullmatch(TASK_NAME, label_column) and label_column != "parity" else "class"
    tasks = [TaskSpec(name=name, label="class")]
    if data.classes.dtype.kind in "biu":
        tasks.append(TaskSpec(name="parity", label="parity"))
    return tasks


def distinct_tasks(
    specs: list[TaskSpec], labels: list[TaskLabels], where: str
) -> tuple[list[TaskSpec], list[TaskLabels], list[str]]:
    """The tasks less each one that splits the examples exactly as an earlier one does, and a note on each left out."""
    kept: list[tuple[TaskSpec, TaskLabels]] = []
    notes = []
    for spec, task in zip(specs, labels):
        twin = next((other for _, other in kept if same_split(other, task)), None)
        if twin is None:
            kept.append((spec, task))
            continue
        notes.append(
            f"{where}: multitask task '{spec.name}' ({_definition(spec)}) splits the examples exactly as task "
            f"'{twin.name}' does ({twin.num_classes} classes, one for one): left out, a second head on the same labels "
            "compares nothing"
        )
    return [spec for spec, _ in kept], [task for _, task in kept], notes


def same_split(a: TaskLabels, b: TaskLabels) -> bool:
    """Whether two tasks group the examples the same way, whatever their classes are called."""
    x = np.concatenate([a.y[split] for split in SPLITS])
    y = np.concatenate([b.y[split] for split in SPLITS])
    pairs = len(np.unique(np.stack([x, y], axis=1), axis=0))
    return pairs == a.num_classes == b.num_classes


def derive_task_labels(data: TaskData, spec: TaskSpec, where: str) -> TaskLabels:
    """The task's class of every example of ``data`` (``where`` names the file, for errors)."""
    values = {split: _values(data, spec, split, where) for split in SPLITS}
    classes, inverse = np.unique(np.concatenate([values[s] for s in SPLITS]), return_inverse=True)
    about = f"{where}: multitask task '{spec.name}' ({_definition(spec)})"
    if len(classes) < 2:
        raise DataError(f"{about} gives {len(classes)} class ({_show(classes)}); a task needs at least 2")
    bounds = np.cumsum([0] + [len(values[s]) for s in SPLITS])
    y = {s: inverse[bounds[i] : bounds[i + 1]].astype(np.int64) for i, s in enumerate(SPLITS)}
    untrained = [str(c) for k, c in enumerate(classes) if not (y["train"] == k).any()]
    if untrained:
        raise DataError(f"{about}: class(es) {', '.join(untrained)} have no training example; every class needs some")
    return TaskLabels(name=spec.name, y=y, classes=classes)


def _values(data: TaskData, spec: TaskSpec, split: str, where: str) -> np.ndarray:
    if spec.label == "column":
        if spec.column not in data.columns:
            held = ", ".join(data.columns) or "none"
            raise DataError(
                f"{where}: multitask task '{spec.name}' reads label column '{spec.column}', which the prepared data "
                f"does not hold (it holds: {held}); re-run `dvc repro prepare` after listing it in data.task_columns"
            )
        return data.columns[spec.column][split]
    labels = data.classes[data.y[split]]
    if spec.label == "class":
        return labels
    if spec.label == "parity":
        _require_numeric(data, spec, where, integers=True)
        return np.where(labels.astype(np.int64) % 2 == 0, "even", "odd")
    _require_numeric(data, spec, where, integers=False)
    return np.where(labels.astype(np.float64) >= spec.threshold, f">= {spec.threshold:g}", f"< {spec.threshold:g}")


def _require_numeric(data: TaskData, spec: TaskSpec, where: str, integers: bool) -> None:
    kind = "integer" if integers else "numeric"
    numeric = data.classes.dtype.kind in "biu" or (
        data.classes.dtype.kind == "f" and (not integers or bool(np.all(data.classes == np.round(data.classes))))
    )
    if not numeric:
        raise DataError(
            f"{where}: multitask task '{spec.name}' (label '{spec.label}') needs {kind} class labels; "
            f"the dataset's labels are {_show(data.classes)}"
        )


def _definition(spec: TaskSpec) -> str:
    if spec.label == "threshold":
        return f"label >= {spec.threshold:g}"
    return f"column '{spec.column}'" if spec.label == "column" else f"label '{spec.label}'"


def _show(values: np.ndarray, limit: int = 6) -> str:
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")
