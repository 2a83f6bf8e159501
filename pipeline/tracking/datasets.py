"""Which data a run used, in MLflow's terms: its prepared splits as MLflow datasets (``mlflow.log_input``).

Each split of the task file the run read is one dataset, named ``<task>/<split>`` (e.g. ``target/train``),
with the file as its source and MLflow's digest of its arrays, so the UI's dataset column tells runs on
the same data from runs on other data at a glance. The split's role is the input's context:
``training``, ``validation`` or ``testing``.
"""

from __future__ import annotations

import warnings

import mlflow

from pipeline.data.prepared import SPLITS, TaskData

CONTEXTS = dict(zip(SPLITS, ("training", "validation", "testing")))


def log_datasets(data: TaskData) -> None:
    """Log ``data``'s splits as the active run's inputs (a task built in memory, with no file, logs none)."""
    if data.source is None:
        return
    for split in SPLITS:
        with warnings.catch_warnings():  # MLflow registers two local-file sources that both claim a path
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            dataset = mlflow.data.from_numpy(
                data.X[split], targets=data.y[split], source=str(data.source), name=f"{data.source.stem}/{split}"
            )
        mlflow.log_input(dataset, context=CONTEXTS[split])
