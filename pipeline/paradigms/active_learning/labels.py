"""The labelled set and the unlabelled pool, which only ever grows by checked additions.

Examples are named by their position in the training split of ``full.npz``. A state is
never changed in place: :meth:`LabelState.add` checks the whole addition first and returns a
new state, so a refused addition leaves the labelled set exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.prepared import read_arrays
from pipeline.errors import DataError


@dataclass(frozen=True)
class LabelState:
    ids: np.ndarray  # labelled examples, in the order they were labelled
    labels: np.ndarray  # the class index each was given
    pool: np.ndarray  # examples still unlabelled, ascending

    @classmethod
    def start(cls, ids: np.ndarray, labels: np.ndarray, pool: np.ndarray) -> "LabelState":
        ids, pool = np.asarray(ids, dtype=np.int64), np.asarray(pool, dtype=np.int64)
        if np.intersect1d(ids, pool).size:
            raise DataError(f"examples {np.intersect1d(ids, pool)[:10].tolist()} are both labelled and in the pool")
        return cls(ids, np.asarray(labels, dtype=np.int64), np.sort(pool))

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, labels: np.ndarray) -> "LabelState":
        """A new state with ``ids`` labelled ``labels``; refused whole if any id is not in the pool or repeats."""
        ids, labels = np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)
        if len(ids) != len(labels):
            raise DataError(f"{len(ids)} examples but {len(labels)} labels")
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise DataError(f"examples queried twice in one round: {unique[counts > 1][:10].tolist()}")
        already = np.intersect1d(ids, self.ids)
        if already.size:
            raise DataError(f"examples already labelled: {already[:10].tolist()}")
        outside = np.setdiff1d(ids, self.pool)
        if outside.size:
            raise DataError(f"examples not in the unlabelled pool: {outside[:10].tolist()}")
        return LabelState(
            np.concatenate([self.ids, ids]), np.concatenate([self.labels, labels]), np.setdiff1d(self.pool, ids)
        )


def load_seed_state(path: str | Path, y_train: np.ndarray) -> LabelState:
    """The seed set ``prepare`` wrote (``active_learning.npz``), labelled with the dataset's own labels."""
    arrays = read_arrays(path)
    if set(arrays) != {"labelled", "pool"}:
        raise DataError(
            f"{path}: expected the arrays 'labelled' and 'pool', found {', '.join(sorted(arrays))}; re-run `dvc repro "
            "prepare`"
        )
    ids, pool = arrays["labelled"], arrays["pool"]
    covered = np.sort(np.concatenate([ids, pool]))
    if not np.array_equal(covered, np.arange(len(y_train))):
        raise DataError(
            f"{path}: the seed set and pool do not cover full.npz's {len(y_train)} training examples once each; "
            "re-run `dvc repro prepare`"
        )
    return LabelState.start(ids, y_train[ids], pool)
