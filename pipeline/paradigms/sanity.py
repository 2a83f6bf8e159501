"""Is a stage's result worth comparing? Its best test accuracy against its task's trivial baselines.

After a stage's runs, its best test accuracy (over variants and seeds) must clear chance and the
majority class by more than a few points, and must not fall below the logistic regression
``prepare`` fitted on the same training split by more than the test set's sampling error (the
baselines each paradigm is judged against: ``Paradigm.judged_against``). If it does not, or if
``prepare`` warned about the task (e.g. domain-shift noise that buries the signal), the stage prints
one warning line and tags each of its runs ``sanity`` with it; the report then flags the stage's
section instead of naming a winner.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

from mlflow.tracking import MlflowClient

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import read_judgement
from pipeline.paradigms.plugin import Paradigm
from pipeline.paradigms.repeats import StageRuns
from pipeline.paths import PREPARED_DIR
from pipeline.ranks import is_global_zero
from pipeline.tracking.store import resolve_tracking_uri

FEW_POINTS = 0.05  # "within a few points of chance": at least this much above it, or two standard errors
TAG = "sanity"


def judge(baselines: dict[str, float], best: float, judged_against: tuple[str, ...]) -> Optional[str]:
    """Why ``best`` (a test accuracy) is not worth comparing, or None when it clears the baselines."""
    n = baselines.get("test_examples", 0)
    error = math.sqrt(best * (1 - best) / n) if n else 0.0  # the test set's sampling error of an accuracy
    floor = {name: baselines[name] for name in ("chance", "majority") if name in judged_against and name in baselines}
    if floor:
        name, value = max(floor.items(), key=lambda item: item[1])
        if best < value + max(FEW_POINTS, 2 * error):
            return f"best test accuracy {best:.3f} is within a few points of {name} ({value:.3f})"
    if "logistic" in judged_against and "logistic" in baselines and best < baselines["logistic"] - 2 * error:
        return (
            f"best test accuracy {best:.3f} is below a logistic regression fitted on the same training split "
            f"({baselines['logistic']:.3f}, beyond the test set's sampling error {error:.3f})"
        )
    return None


def check_results(
    paradigm: Paradigm, runs: StageRuns, params: SharedParams, prepared_dir: Path = PREPARED_DIR
) -> Optional[str]:
    """The stage's warning, printed and tagged on its ``runs``; None when all is well."""
    baselines, notes = read_judgement(Path(prepared_dir) / f"{paradigm.task}.npz")
    scores = [entry["test/acc"] for entry in runs.values() if not math.isnan(entry.get("test/acc", math.nan))]
    verdict = judge(baselines, max(scores), paradigm.judged_against) if scores and baselines else None
    problems = [*(f"prepare: {note}" for note in notes), *([verdict] if verdict else [])]
    if not problems or not is_global_zero():
        return None
    warning = f"{paradigm.stage} on the {paradigm.task} task: " + "; ".join(problems)
    print(f"warning: {warning}", file=sys.stderr)
    client = MlflowClient(resolve_tracking_uri(params.tracking))
    for entry in runs.values():
        client.set_tag(entry["run_id"], TAG, warning)
    return warning
