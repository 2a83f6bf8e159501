"""Per-round metrics, written to MLflow in batches.

A federated run logs a dozen metrics every round, an active-learning run every query round. One
``mlflow.log_metrics`` call per round is one SQLite transaction (or one HTTP request to a team's
server): about 18 ms each on the default store, more than a round of the default model trains. The
rounds' metrics are kept and written together, with each round's own step and timestamp: the first
round at once (the MLflow UI shows the run training, and a run killed later keeps it), then every
:data:`FLUSH_SECONDS` (the UI follows a long run) and when the run ends, failed or not.
"""

from __future__ import annotations

import math
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

FLUSH_SECONDS = 10.0
MAX_PER_REQUEST = 1000  # MLflow's limit on metrics per log_batch


class StepMetrics:
    def __init__(self, run_id: str, flush_seconds: float = FLUSH_SECONDS):
        self.run_id, self.flush_seconds = run_id, flush_seconds
        self.pending: list[Metric] = []
        self.flushed_at = -math.inf  # the first round goes out at once

    def log(self, metrics: dict[str, float], step: int) -> None:
        """As ``mlflow.log_metrics(metrics, step=step)``, written at the next flush."""
        stamp = int(time.time() * 1000)
        self.pending += [Metric(key, float(value), stamp, int(step)) for key, value in metrics.items()]
        if time.monotonic() - self.flushed_at >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        client = MlflowClient()
        for lo in range(0, len(self.pending), MAX_PER_REQUEST):
            client.log_batch(self.run_id, metrics=self.pending[lo : lo + MAX_PER_REQUEST])
        self.pending = []
        self.flushed_at = time.monotonic()
