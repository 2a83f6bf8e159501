"""What a report section reads: the runs grouped by variant, each run's metrics and test answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import pandas as pd

from pipeline.reporting.significance import Answers, Scores

Predictions = Callable[[str], Optional[dict[str, Answers]]]  # run id -> per output its test answers, or None


@dataclass(frozen=True)
class Results:
    """What a section reads: the runs grouped by variant, one row per run, and any metric's history."""

    table: pd.DataFrame  # one row per (stage, variant): each metric's mean, and its std over seeds
    runs: pd.DataFrame  # one row per run
    history: Callable[[pd.DataFrame, str], pd.DataFrame]  # (runs, metric) -> columns variant, seed, step, value
    predictions: Predictions = lambda run_id: None  # a run's test answers (none known unless given)
    skipped: dict[str, str] = field(default_factory=dict)  # stage -> why it had nothing to run on this data

    def of(self, stage: str) -> pd.DataFrame:
        """The table's rows of one stage."""
        return self.table[self.table.stage == stage]

    def scores(self, row: pd.Series, metric: str = "test/acc", output: Optional[str] = None) -> Scores:
        """``row``'s ``metric`` per seed and, for an accuracy (``output``: which of the run's outputs; None: its
        only one), each seed's test answers; a metric without test answers (``al/alc``) gets none."""
        runs = self.runs[self.runs.run_id.isin(row["run_ids"])]
        value = {int(run.seed): float(run.get(metric, math.nan)) for _, run in runs.iterrows()}
        value = {seed: v for seed, v in value.items() if not math.isnan(v)}
        answers = {}
        if metric.endswith("acc"):
            for _, run in runs.iterrows():
                found = self.predictions(run.run_id) or {}
                only = next(iter(found.values())) if len(found) == 1 else None  # several outputs: name one
                answers[int(run.seed)] = found.get(output) if output else only
        return Scores(value, answers)
