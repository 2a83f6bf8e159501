"""MLflow for a sweep: one parent run per study, one child run per trial (the stage's own runs
nest under the trial's), and at the end the best params, best value and Optuna's plots on the parent.

The worker that creates the study makes the parent and records its id on the study before any
trial is enqueued; workers that join read it there, so there is exactly one parent.
"""

from __future__ import annotations

import time
import traceback
import warnings

import mlflow
import optuna
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.visualization import matplotlib as optuna_plots

from pipeline.config.edit import flatten
from pipeline.credentials import masked
from pipeline.tracking import figures
from pipeline.tracking.runs import experiment_id
from pipeline.tracking.store import owner_tags

PARENT, TRIAL = "parent", "trial"


def create_parent_run(client: MlflowClient, experiment: str, study: str, stage: str) -> str:
    """The study's parent run; made once, by the worker that creates the study, which records its id on the study."""
    tags = {"sweep_study": study, "sweep_role": PARENT, "stage": stage, "paradigm": "sweep"}
    return client.create_run(experiment_id(experiment), run_name=f"sweep-{study}", tags=tags).info.run_id


class TrialRun:
    """The child run of one trial: its params, its objective, its state (complete / pruned / failed)."""

    def __init__(self, experiment: str, parent: str, study: str, stage: str, trial: optuna.Trial):
        self.run = mlflow.start_run(
            experiment_id=experiment_id(experiment),
            run_name=f"trial-{trial.number}",
            parent_run_id=parent,
            tags={
                "sweep_study": study,
                "sweep_role": TRIAL,
                "stage": stage,
                "paradigm": "sweep",
                "trial_number": str(trial.number),
                **owner_tags(),  # a worker killed mid-trial: its trial's run is closed at a later start
            },
        )

    def finished(self, params: dict, metric: str, value: float) -> None:
        mlflow.log_params(params)
        mlflow.log_metric(f"objective/{metric}", value)
        self._end("complete", "FINISHED")

    def pruned(self, params: dict, reason: str) -> None:
        mlflow.log_params(params)
        mlflow.set_tag("pruned_because", reason)
        self._end("pruned", "KILLED")

    def failed(self, params: dict, error: BaseException) -> None:
        mlflow.log_params(params)
        mlflow.set_tag("error", masked(f"{type(error).__name__}: {error}")[:5000])
        mlflow.log_text(masked("".join(traceback.format_exception(error))), "error.txt")
        self._end("failed", "FAILED")

    def _end(self, state: str, status: str) -> None:
        mlflow.set_tag("trial_state", state)
        mlflow.end_run(status)


def summarise(client: MlflowClient, parent: str, study: optuna.Study, metric: str) -> None:
    """Best params and value, trial counts by state, and the history and importance plots, on the parent."""
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    client.log_metric(parent, "trials/complete", states.count("complete"))
    client.log_metric(parent, "trials/pruned", states.count("pruned"))
    client.log_metric(parent, "trials/failed", states.count("fail"))
    client.set_terminated(parent, "FINISHED")  # each worker, as it ends; the last one's summary stands
    completed = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        return
    best = study.best_trial
    client.log_metric(parent, f"best/{metric}", best.value)
    client.log_metric(parent, "best/trial", best.number)
    for key, value in flatten({"best": best.params}).items():
        _set_tag(client, parent, key, str(value))  # tags, not params: a later worker may find a better trial
    client.log_dict(parent, best.params, "best_params.json")
    plots = {"optimization_history.png": optuna_plots.plot_optimization_history}
    if len(completed) > 1 and len(best.params) > 0:
        plots["param_importances.png"] = optuna_plots.plot_param_importances
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                # matplotlib plots are "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError) as err:  # e.g. importances when every trial drew the same value
            _set_tag(client, parent, f"plot_skipped/{name}", str(err)[:500])
            continue
        client.log_figure(parent, axes.figure, f"plots/{name}")
        figures.close(axes.figure)


def _set_tag(client: MlflowClient, run_id: str, key: str, value: str, attempts: int = 5) -> None:
    """Workers ending together write the same tags on the parent: a clash on a SQLite store is retried."""
    for attempt in range(attempts):
        try:
            client.set_tag(run_id, key, value)
            return
        except MlflowException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
