"""A sweep worker: check the space, open (or join) the study, run trials until none is left.

Each trial: draw values, build the trial's params (checked again), run the stage in a temporary
output folder under a child MLflow run, tell Optuna complete / pruned / failed. A trial that
raises is recorded as failed, with its error, and the sweep goes on.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from pipeline.config.params import Params
from pipeline.paradigms import paradigm
from pipeline.sweep.objective import pruning, run_trial
from pipeline.sweep.space import check_space, stage_sweep, suggest, with_values
from pipeline.sweep.study import next_trial, open_study, storage_for
from pipeline.sweep.tracking import TrialRun, create_parent_run, summarise
from pipeline.tracking.runs import resolve_tracking_uri

PARENT_RUN = "mlflow_parent_run_id"  # study user attr
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own line per trial


@dataclass
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    ran: int  # trials this worker ran
    best_params: Optional[dict[str, Any]]
    best_value: Optional[float]


def run_sweep(
    params: Params,
    stage: str,
    n_trials: int,
    study_name: str,
    storage_url: Optional[str] = None,
    timeout_s: Optional[float] = None,
) -> SweepResult:
    entry = paradigm(stage)
    sweep = stage_sweep(params, stage)
    check_space(params, stage, sweep, entry.sections)  # before any trial
    metric = sweep.metric or entry.sweep_metric
    mlflow.set_tracking_uri(resolve_tracking_uri(params.tracking))
    client = MlflowClient()

    def record_parent(study: optuna.Study) -> None:
        study.set_user_attr(PARENT_RUN, create_parent_run(client, params.tracking.experiment, study_name, stage))

    study = open_study(study_name, storage_for(storage_url), sweep.direction, n_trials, params.seed, record_parent)
    parent = study.user_attrs[PARENT_RUN]
    started, ran = time.monotonic(), 0
    while timeout_s is None or time.monotonic() - started < timeout_s:
        trial = next_trial(study)
        if trial is None:
            break
        ran += 1
        _one_trial(study, trial, params, stage, sweep.fixed, sweep.space, metric, parent, study_name)
    summarise(client, parent, study, metric)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if done else None
    return SweepResult(study, parent, ran, best.params if best else None, best.value if best else None)


def _one_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    params: Params,
    stage: str,
    fixed: dict,
    space: dict,
    metric: str,
    parent: str,
    study_name: str,
) -> None:
    run = TrialRun(params.tracking.experiment, parent, study_name, stage, trial)
    values: dict[str, Any] = {}
    try:
        values = suggest(trial, space)
        trial_params = with_values(params, {**fixed, **values})
        with tempfile.TemporaryDirectory(prefix=f"sweep-{stage}-") as out, pruning(trial, metric):
            value, _ = run_trial(stage, trial_params, metric, Path(out))
    except optuna.TrialPruned as pruned:
        run.pruned(values, str(pruned))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        _progress(study, trial, "pruned", f"{pruned} {values}")
    except Exception as error:  # noqa: BLE001 - any failure of one trial is that trial's, recorded; the sweep goes on
        run.failed(values, error)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        _progress(study, trial, "failed", f"{type(error).__name__}: {error}")
    else:
        run.finished(values, metric, value)
        study.tell(trial, value)
        _progress(study, trial, "complete", f"{metric} {value:.4f} {values}")


def _progress(study: optuna.Study, trial: optuna.Trial, state: str, detail: str) -> None:
    requested = study.user_attrs.get("trials_requested", "?")
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    best = f"  (best so far {study.best_value:.4f}, trial {study.best_trial.number})" if done else ""
    print(
        f"[sweep {study.study_name}] trial {trial.number + 1}/{requested} {state}: {detail}{best}",
        file=sys.stderr,
        flush=True,
    )
