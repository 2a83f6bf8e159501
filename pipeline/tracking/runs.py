"""Open an MLflow run for a stage, with the tags and flat params every run carries.

The store is ``tracking.tracking_uri`` (default ``sqlite:///mlflow.db``); the environment
variable ``MLFLOW_TRACKING_URI`` overrides it, so a team can point at its tracking server.
In a distributed run, the processes after the first track into a throwaway store of their own:
the stage's runs are those of global rank 0 (:mod:`pipeline.ranks`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException

from pipeline.config.edit import flatten
from pipeline.credentials import masked
from pipeline.threads import use_threads
from pipeline.tracking.store import REMOTE_SCHEMES, open_store, owner_tags

if TYPE_CHECKING:
    from pipeline.config.schema import SharedParams

LOCAL_ARTIFACTS_DIR = Path("mlartifacts")
# A run's test answers: per output <output>_true and <output>_pred, int arrays in test-split order. The run
# contract writes them (pipeline.tracking.contract), the comparison reads them (pipeline.compare.sources).
PREDICTIONS_ARTIFACT = "predictions/test.npz"
# A run's MLflow Model (runs:/<run id>/model): the run contract logs it (pipeline.tracking.mlflow_model), the
# comparison registers it (pipeline.compare.registry).
MODEL_NAME = "model"
# MLflow's mark of a model-training experiment (what the UI's experiment-kind selector shows). Which view the UI
# opens on is still the browser's choice, GenAI by default: the comparison's links ask for the model-training
# view (pipeline.compare.sources.TRAINING_VIEW).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# MLflow's system-metrics monitor samples every 10 s by default: longer than most of the default pipeline's runs.
SYSTEM_METRICS_INTERVAL_S = 1
# What the pipeline writes into the working tree as it runs: not a change to the code or params (git_tags).
OWN_OUTPUTS = ("dvc.lock", "metrics", "plots", "reports")


def local_artifacts_dir(uri: str) -> Path:
    """``mlartifacts/`` beside a SQLite store's file (a scratch store keeps its artifacts with it), else here."""
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        return Path(uri.removeprefix("sqlite:///")).parent / LOCAL_ARTIFACTS_DIR
    return LOCAL_ARTIFACTS_DIR


def experiment_id(name: str) -> str:
    """The experiment's id, creating it (with local artifacts beside a local store) if needed, and marked as a
    model-training experiment (:data:`EXPERIMENT_KIND`)."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is None:
        uri = mlflow.get_tracking_uri()
        location = None if urlparse(uri).scheme in REMOTE_SCHEMES else local_artifacts_dir(uri).resolve().as_uri()
        try:
            return mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except MlflowException:  # another process (a sweep's other worker) created it meanwhile
            existing = mlflow.get_experiment_by_name(name)
            if existing is None:
                raise
    for key, value in EXPERIMENT_KIND.items():  # an experiment made before it was marked
        if existing.tags.get(key) != value:
            mlflow.MlflowClient().set_experiment_tag(existing.experiment_id, key, value)
    return existing.experiment_id


@dataclass(frozen=True)
class RunSpec:
    """Who a run is: its stage, paradigm and variant, and the params sections its result depends on."""

    stage: str
    paradigm: str
    variant: str
    sections: tuple[str, ...]

    @property
    def label(self) -> str:
        """How progress lines and reports name the run (:func:`run_label`)."""
        return run_label(self.stage, self.variant)


@contextmanager
def stage_run(params: SharedParams, spec: RunSpec) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run for one stage and variant: FINISHED on success, FAILED if the block raises.

    ``spec.sections`` are the params.yaml sections the stage depends on (as in dvc.yaml); their
    hash tags the run, so runs made with the same params can be found again.
    """
    open_store(params.tracking)
    used = params.model_dump(mode="json")
    tags = {
        "stage": spec.stage,
        "paradigm": spec.paradigm,
        "variant": spec.variant,
        "params_hash": params_hash({key: used[key] for key in spec.sections}),
        **git_tags(),
        **owner_tags(),
    }
    run_name = run_label(spec.stage, spec.variant, separator="-")
    nested = mlflow.active_run() is not None  # inside a sweep's trial run: the stage's runs are its children
    experiment = experiment_id(params.tracking.experiment)
    effective = used | _effective_trainer(params, spec.stage)
    monitored = params.tracking.system_metrics and "trainer" in effective  # a training run
    if monitored:
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    with mlflow.start_run(
        experiment_id=experiment, run_name=run_name, tags=tags, nested=nested, log_system_metrics=monitored
    ) as run:
        if "trainer" in effective:  # a stage that trains: its thread count, set here as every training run opens
            mlflow.set_tag("torch_threads", use_threads(effective["trainer"]["num_threads"]))
        shown = json.loads(masked(json.dumps(effective)))  # a password in a URI of params.yaml is not logged
        mlflow.log_params(flatten(shown))
        mlflow.log_dict(shown, "params/resolved_params.yaml")
        yield run


def run_label(stage: str, variant: str, separator: str = "/") -> str:
    """``stage/variant``, or the stage alone when the variant is the stage: how progress lines and reports name a
    run (and, with ``-``, how MLflow lists it)."""
    return stage if variant in ("", stage) else f"{stage}{separator}{variant}"


def _effective_trainer(params: SharedParams, stage: str) -> dict[str, Any]:
    section = getattr(params, stage, None)
    if section is None or not hasattr(section, "trainer"):
        return {}
    return {"trainer": params.trainer_for(stage).model_dump(mode="json")}


def params_hash(used: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(used, sort_keys=True, default=str).encode()).hexdigest()[:12]


def git_tags() -> dict[str, str]:
    """The commit the code came from and whether the working tree differed from it (params edited but not
    committed is the common case): ``git_dirty`` true/false and ``git_changes``, the files that differ. The
    pipeline's own outputs (dvc.lock, metrics, plots, reports) change as it runs and do not count."""
    commit = git_output("rev-parse", "HEAD")
    changes = git_output("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in OWN_OUTPUTS))
    if commit is None or changes is None:
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    changed = [line[3:] for line in changes.splitlines() if line.strip()]
    tags = {"git_commit": commit.strip(), "git_dirty": str(bool(changed)).lower()}
    return tags | ({"git_changes": _show_paths(changed)} if changed else {})


def git_output(*args: str) -> Optional[str]:
    """A git command's output in the working folder; None where git is missing or the folder is no repository."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _show_paths(paths: list[str], limit: int = 500) -> str:
    shown = ", ".join(paths)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
