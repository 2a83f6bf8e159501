"""The ``multitask`` params section: the tasks and their weighting, and how they must fit the data section."""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from pipeline.config.schema import ModelConfig, Section, SharedParams, StageSection, once_each

TaskLabel = Literal["class", "parity", "threshold", "column"]
TASK_NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"  # it names metrics (test/<name>/acc) and files


class TaskSpec(Section):
    """One task of the multi-task model: what it predicts, how much its loss counts, its own layers.

    ``label``: ``class`` (the dataset's label), ``parity`` (integer label even/odd),
    ``threshold`` (label >= ``threshold``) or ``column`` (a column named in ``data.task_columns``).
    The output layer's size is the number of distinct labels the definition gives.
    """

    name: str
    label: TaskLabel
    threshold: Optional[float] = None
    column: Optional[str] = None
    weight: float = Field(1.0, gt=0)  # fixed: the loss weight; uncertainty: the starting weight
    tower: list[int] = Field(default_factory=list)  # hidden sizes of the task's own layers before its output layer

    @field_validator("name")
    @classmethod
    def _usable_name(cls, name: str) -> str:
        if not re.fullmatch(TASK_NAME, name):
            raise ValueError(
                "a task name starts with a letter and holds only letters, digits, _ and - (it names metrics and files)"
            )
        return name

    @field_validator("tower")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        return ModelConfig._positive(sizes)

    @model_validator(mode="after")
    def _label_needs(self) -> TaskSpec:
        needs = (("threshold", "e.g. 5: labels >= 5 are class 1"), ("column", "e.g. the column's name"))
        for kind, example in needs:
            given = getattr(self, kind) is not None
            if self.label == kind and not given:
                raise ValueError(f"task '{self.name}': label '{kind}' needs {kind} ({example})")
            if given and self.label != kind:
                raise ValueError(
                    f"task '{self.name}': {kind} applies only to label '{kind}', but label is '{self.label}'"
                )
        return self


class MultitaskConfig(StageSection):
    """One shared body with a branch per task, against one separate model per task."""

    # None (the default): the tasks follow the data, the class under data.label_column's name, and its parity where
    # that splits the examples another way (pipeline.paradigms.multitask.task_labels.default_tasks)
    tasks: Optional[list[TaskSpec]] = None
    weighting: Literal["fixed", "uncertainty"] = "uncertainty"
    init_from_base: bool = False  # start the shared body (and every separate body) from pretrain's base

    @field_validator("tasks")
    @classmethod
    def _distinct_names(cls, tasks: Optional[list[TaskSpec]]) -> Optional[list[TaskSpec]]:
        if tasks is None:
            return None
        if len(tasks) < 2:
            raise ValueError(f"multi-task learning needs at least 2 tasks, got {len(tasks)}")
        once_each([t.name for t in tasks], "task name")
        return tasks


def check_multitask(params: SharedParams) -> None:
    for i, task in enumerate(params.multitask.tasks or []):
        if task.column is not None and task.column not in params.data.task_columns:
            raise ValueError(
                f"multitask.tasks[{i}].column = '{task.column}' (task '{task.name}'): not a declared label column; "
                f"data.task_columns is {params.data.task_columns}: add it there so prepare keeps it out of the features"
            )
