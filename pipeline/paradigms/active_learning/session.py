"""A human labelling session's state on disk: what is labelled, and the query waiting for answers.

``<dir>/state.json`` names examples by their dataset row id (``ids`` in ``full.npz``) and
labels by the class names the dataset uses, so a person can read and back it up. It is
replaced atomically, and only after a whole import has been checked: an interrupted or
refused import leaves the previous state intact.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.data.prepared import TaskData
from pipeline.errors import DataError
from pipeline.io import write_text
from pipeline.paradigms.active_learning.labels import LabelState

STATE_FILE = "state.json"
STALE = (
    "was the session started on data prepared with other params? Prepare it as then, or start a new session in "
    "another --dir"
)


@dataclass
class Session:
    strategy: str
    round: int  # queries answered so far
    labelled: dict[str, str]  # dataset row id -> class name, in the order labelled
    pending: list[int] = field(default_factory=list)  # the exported query's row ids, until its CSV is imported
    run_id: Optional[str] = None  # the session's MLflow run

    @classmethod
    def begin(cls, strategy: str, seed: LabelState, data: TaskData) -> "Session":
        """A new session from ``prepare``'s seed set, labelled with the dataset's own labels."""
        return cls(
            strategy, 0, {str(data.ids["train"][i]): str(data.classes[c]) for i, c in zip(seed.ids, seed.labels)}
        )

    def label_state(self, data: TaskData) -> LabelState:
        """The labelled set and pool as positions in the training split."""
        positions = positions_of([int(i) for i in self.labelled], data)
        names = [str(c) for c in data.classes]
        unknown = sorted({c for c in self.labelled.values() if c not in names})
        if unknown:
            raise DataError(
                f"labels {unknown} of this session are not classes of the prepared data ({', '.join(names)}); {STALE}"
            )
        labels = np.array([names.index(c) for c in self.labelled.values()], dtype=np.int64)
        pool = np.setdiff1d(np.arange(len(data.y["train"])), positions)
        return LabelState.start(positions, labels, pool)

    def save(self, folder: Path) -> None:
        write_text(Path(folder) / STATE_FILE, json.dumps(asdict(self), indent=2) + "\n")  # unsorted: labelling order

    @classmethod
    def load(cls, folder: Path) -> Optional["Session"]:
        path = Path(folder) / STATE_FILE
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as err:
            raise DataError(
                f"{path}: not a labelling session's state ({err}); restore it from a backup or start over in a new "
                "folder"
            ) from err


def positions_of(row_ids: list[int], data: TaskData) -> np.ndarray:
    """Positions in the training split of dataset row ids (each must be a training example)."""
    where = {int(r): i for i, r in enumerate(data.ids["train"])}
    missing = [r for r in row_ids if r not in where]
    if missing:
        raise DataError(f"ids {missing[:10]} are not examples of the training split; {STALE}")
    return np.array([where[r] for r in row_ids], dtype=np.int64)
