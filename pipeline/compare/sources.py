"""The runs behind the current outputs: listed in ``metrics/<stage>.json``, read back from MLflow.

Only runs the store holds as FINISHED count as results. A listed run id the store lacks, a
run that failed or never finished, or one made by another stage stops the comparison, and
the error names the stage and the id. A run's test answers (:func:`fetch_predictions`) are read
only for the runs a section tests against each other.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.credentials import masked, without_credentials
from pipeline.errors import DataError, UserError
from pipeline.paths import metrics_file
from pipeline.tracking.runs import PREDICTIONS_ARTIFACT, run_label
from pipeline.tracking.store import no_progress_bars

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
# MLflow 3's UI shows an experiment as GenAI (traces) or model training per browser, GenAI by default; links ask
# for the model-training view, whose first page is the runs table.
TRAINING_VIEW = "workflowType=machine_learning"
NOT_IN_STORE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
EPOCH_CAP = "trainer.max_epochs"  # the run's param: its stage's effective trainer budget


@dataclass(frozen=True)
class ListedRun:
    stage: str
    key: str  # its key in metrics/<stage>.json: the variant, or <variant>@seed<N>
    run_id: str


def listed_runs(metrics_dir: Path, stages: tuple[str, ...]) -> tuple[list[ListedRun], dict[str, str]]:
    """The runs each of ``stages`` lists in its ``metrics/<stage>.json``, and why each stage that had nothing to run
    on this data (it lists no runs, and says why under ``skipped``) ran none."""
    listed, skipped = [], {}
    for stage in stages:
        path = metrics_file(stage, metrics_dir)
        if not path.is_file():
            raise UserError(f"compare: stage '{stage}' has no {path}; run `dvc repro {stage}` first")
        try:
            written = json.loads(path.read_text())
            runs = written.get("runs")
        except (json.JSONDecodeError, AttributeError) as err:
            raise DataError(
                f"{path}: not the JSON object a stage writes ({err}); re-run `dvc repro --force {stage}`"
            ) from err
        if runs == {} and isinstance(written.get("skipped"), str) and written["skipped"]:
            skipped[stage] = written["skipped"]
            continue
        if not isinstance(runs, dict) or not runs:
            raise DataError(f"{path}: lists no runs under 'runs'; re-run `dvc repro --force {stage}`")
        for key, entry in runs.items():
            run_id = entry.get("run_id") if isinstance(entry, dict) else None
            if not isinstance(run_id, str) or not run_id:
                raise DataError(f"{path}: run '{key}' has no run_id; re-run `dvc repro --force {stage}`")
            listed.append(ListedRun(stage, key, run_id))
    return listed, skipped


def fetch_runs(listed: list[ListedRun], client: MlflowClient, ui_url: str, tasks: dict[str, str]) -> pd.DataFrame:
    """One row per run: who made it (stage, paradigm, variant, seed, the ``tasks[stage]`` it trained and tested on),
    its link, its ``sanity`` warning ("" for none), its epoch cap (``train/max_epochs``) and every metric it logged."""
    rows = []
    for item in listed:
        run = _finished_run(item, client)
        tags = run.data.tags
        variant = tags.get("variant", item.key)
        rows.append(
            {
                "stage": item.stage,
                "paradigm": tags.get("paradigm", item.stage),
                "variant": variant,
                "label": run_label(item.stage, variant),
                "seed": int(run.data.params.get("seed", -1)),
                "task": tasks.get(item.stage, ""),
                "device": tags.get("device", ""),
                "sanity": tags.get("sanity", ""),  # a stage's warning that its results are near chance
                "federated_engine": tags.get("engine", ""),  # in-process or on Flower
                "run_id": run.info.run_id,
                "link": run_url(ui_url, run.info.experiment_id, run.info.run_id),
                "train/max_epochs": _number(run.data.params.get(EPOCH_CAP)),
                **run.data.metrics,
            }
        )
    return pd.DataFrame(rows)


def _finished_run(item: ListedRun, client: MlflowClient):
    where = f"stage '{item.stage}' (metrics/{item.stage}.json, '{item.key}') names MLflow run {item.run_id}"
    try:
        run = client.get_run(item.run_id)
    except MlflowException as err:
        if err.error_code not in NOT_IN_STORE:
            raise
        run = None
    if run is None or run.info.lifecycle_stage == "deleted":
        raise UserError(
            f"compare: {where}, which is not in the store at {masked(client.tracking_uri)} (deleted, or "
            f"MLFLOW_TRACKING_URI points to another store); re-run `dvc repro --force {item.stage}`"
        )
    if run.info.status != "FINISHED":
        raise UserError(
            f"compare: {where}, which is {run.info.status} in MLflow, not FINISHED: a partial run is not a result; "
            f"re-run `dvc repro --force {item.stage}`"
        )
    if run.data.tags.get("stage") != item.stage:
        raise UserError(
            f"compare: {where}, which stage '{run.data.tags.get('stage')}' made; re-run `dvc repro --force "
            f"{item.stage}`"
        )
    if "test/acc" not in run.data.metrics:
        raise UserError(f"compare: {where}, which finished without test/acc; re-run `dvc repro --force {item.stage}`")
    return run


def _number(text: Optional[str]) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def fetch_predictions(client: MlflowClient, run_id: str) -> Optional[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per output, the true and predicted class of every test example, as the run contract logged them; None for
    a run that logged none (one from before they were logged)."""
    logged = client.list_artifacts(run_id, PREDICTIONS_ARTIFACT.rpartition("/")[0])
    if PREDICTIONS_ARTIFACT not in {artifact.path for artifact in logged}:
        return None
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-") as tmp, no_progress_bars():
        with np.load(client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, tmp)) as arrays:
            found = {key: arrays[key] for key in arrays.files}
    outputs = {key.rpartition("_")[0] for key in found}
    return {o: (found[f"{o}_true"], found[f"{o}_pred"]) for o in outputs if {f"{o}_true", f"{o}_pred"} <= set(found)}


def metric_curves(client: MlflowClient, runs: pd.DataFrame, key: str) -> pd.DataFrame:
    """Every step of ``key`` in each of ``runs``: columns variant, seed, step, value."""
    rows = [
        {"variant": run.variant, "seed": run.seed, "step": point.step, "value": point.value}
        for run in runs.itertuples()
        for point in client.get_metric_history(run.run_id, key)
    ]
    return pd.DataFrame(rows, columns=["variant", "seed", "step", "value"])


def run_url(ui: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI at ``ui``."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def experiment_url(ui: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow UI at ``ui``."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}?{TRAINING_VIEW}"


def ui_url(configured: str | None, tracking_uri: str) -> str:
    """Where the MLflow UI is: as configured, else the tracking server itself, else `mlflow ui`'s default; never
    with the credentials a URI may carry (the links are written into reports that others read)."""
    if configured:
        return without_credentials(configured)
    return without_credentials(tracking_uri) if urlparse(tracking_uri).scheme in ("http", "https") else LOCAL_UI
