"""A sweep worker: check the space, open (or join) the study, run trials until none is left.

Each trial: draw values, build the trial's params (checked again), run the stage in a temporary
output folder under a child MLflow run, with its heartbeat beating, tell Optuna complete / pruned /
failed. A trial that raises is recorded as failed, with its error, and the sweep goes on.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import optuna
from mlflow.tracking import MlflowClient

from pipeline.credentials import masked
from pipeline.paradigms import paradigm
from pipeline.params import Params
from pipeline.sweep.objective import pruning, run_trial
from pipeline.sweep.space import check_space, stage_sweep, suggest, with_values
from pipeline.sweep.storage import HEARTBEAT_S, check_storage, storage_for
from pipeline.sweep.study import IDLE_WAIT_S, heartbeat, next_trial, open_study, retry_of
from pipeline.sweep.tracking import TrialRun, create_parent_run, summarise
from pipeline.tracking.store import open_store

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
    heartbeat_s: int = HEARTBEAT_S,
    idle_wait_s: float = IDLE_WAIT_S,
) -> SweepResult:
    check_storage(storage_url)  # a wrong --storage is one line before anything is made
    entry = paradigm(stage)
    sweep = stage_sweep(params, stage)
    check_space(params, stage, sweep, entry.sections)  # before any trial
    metric = sweep.metric or entry.sweep_metric
    open_store(params.tracking)
    client = MlflowClient()

    def record_parent(study: optuna.Study) -> None:
        study.set_user_attr(PARENT_RUN, create_parent_run(client, params.tracking.experiment, study_name, stage))

    storage = storage_for(storage_url, heartbeat_s)
    study = open_study(study_name, storage, sweep.direction, n_trials, params.seed, record_parent)
    parent = study.user_attrs[PARENT_RUN]
    deadline, ran = None if timeout_s is None else time.monotonic() + timeout_s, 0
    while deadline is None or time.monotonic() < deadline:
        trial = next_trial(study, idle_wait_s if deadline is None else min(idle_wait_s, deadline - time.monotonic()))
        if trial is None:
            break
        ran += 1
        with heartbeat(study, trial):
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
        study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
        _progress(study, trial, "pruned", f"{pruned} {values}")
    except Exception as error:  # noqa: BLE001 - any failure of one trial is that trial's, recorded; the sweep goes on
        run.failed(values, error)
        study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        _progress(study, trial, "failed", masked(f"{type(error).__name__}: {error}"))
    else:
        run.finished(values, metric, value)
        study.tell(trial, value, skip_if_finished=True)  # skip: another worker failed it as stale (this one stalled)
        _progress(study, trial, "complete", f"{metric} {value:.4f} {values}")


def _progress(study: optuna.Study, trial: optuna.Trial, state: str, detail: str) -> None:
    requested = study.user_attrs.get("trials_requested", "?")
    retried = retry_of(study, trial)
    which = f"{trial.number + 1}/{requested}"
    if retried is not None:
        which = f"{trial.number + 1} (retry of trial {retried + 1}, whose worker died)"
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    best = f"  (best so far {study.best_value:.4f}, trial {study.best_trial.number + 1})" if done else ""
    print(
        f"[sweep {study.study_name}] trial {which} {state}: {detail}{best}",
        file=sys.stderr,
        flush=True,
    )
