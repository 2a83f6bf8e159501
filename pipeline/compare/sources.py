"""The runs behind the current outputs: listed in ``metrics/<stage>/<variant>.json``, read back from MLflow.

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
from pipeline.paths import metrics_dir_of
from pipeline.tracking.outputs import SKIPPED
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
    key: str  # the variant whose file lists it: metrics/<stage>/<variant>.json
    run_id: str


def listed_runs(metrics_dir: Path, stages: tuple[str, ...]) -> tuple[list[ListedRun], dict[str, str]]:
    """The runs each of ``stages`` lists under ``run_ids`` in its files ``metrics/<stage>/**/*.json``, and why each
    stage that had nothing to run on this data (its one file ``skipped.json`` lists no runs, and says why under
    ``skipped``) ran none."""
    listed, skipped = [], {}
    for stage in stages:
        folder = metrics_dir_of(stage, metrics_dir)
        if not folder.is_dir():
            raise UserError(f"compare: stage '{stage}' has no {folder}; run `dvc repro {stage}` first")
        files = {path.relative_to(folder).with_suffix("").as_posix(): path for path in sorted(folder.rglob("*.json"))}
        if not files:
            raise DataError(f"{folder}: lists no runs (no <variant>.json); re-run `dvc repro --force {stage}`")
        written = {key: _run_list(path, stage) for key, path in files.items()}
        why = _skipped_why(written)
        if why:
            skipped[stage] = why
            continue
        for key, entry in written.items():
            ids = entry.get("run_ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
                raise DataError(f"{files[key]}: lists no run ids under 'run_ids'; re-run `dvc repro --force {stage}`")
            listed += [ListedRun(stage, key, run_id) for run_id in ids]
    return listed, skipped


def _run_list(path: Path, stage: str) -> dict:
    """One variant's file, which must be the JSON object a stage writes."""
    try:
        written = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not the JSON a stage writes ({err}); re-run `dvc repro --force {stage}`") from err
    if not isinstance(written, dict):
        raise DataError(f"{path}: not the JSON object a stage writes; re-run `dvc repro --force {stage}`")
    return written


def _skipped_why(written: dict[str, dict]) -> Optional[str]:
    """Why the stage ran nothing, when its one file is ``skipped.json`` as a stage writes it: no runs, and one reason
    in a list (DVC's tables leave lists out)."""
    entry = written.get(SKIPPED, {})
    why = entry.get(SKIPPED)
    if len(written) != 1 or entry.get("run_ids") != [] or not isinstance(why, list) or len(why) != 1:
        return None
    return why[0] if isinstance(why[0], str) and why[0] else None


def fetch_runs(listed: list[ListedRun], client: MlflowClient, ui_url: str, tasks: dict[str, str]) -> pd.DataFrame:
    """One row per run: who made it (stage, paradigm, variant, seed, the ``tasks[stage]`` it trained and tested on),
    its link, its ``sanity`` warning ("" for none), its epoch cap (``train/max_epochs``) and every metric it logged."""
    rows, started = [], []
    for item in listed:
        run = _finished_run(item, client)
        started.append(run.info.start_time or 0)
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
    return pd.DataFrame([rows[i] for i in _in_run_order(listed, started)])


def _in_run_order(listed: list[ListedRun], started: list[int]) -> list[int]:
    """The positions of ``listed``, each stage's variants in the order the stage ran them: its folder of files has no
    order, so by when each variant's first listed run (its own seed's) started; a variant's runs stay as listed."""
    stages = list(dict.fromkeys(item.stage for item in listed))
    first: dict[tuple[str, str], int] = {}
    for item, start in zip(listed, started):
        first.setdefault((item.stage, item.key), start)
    return sorted(
        range(len(listed)), key=lambda i: (stages.index(listed[i].stage), first[listed[i].stage, listed[i].key])
    )


def _finished_run(item: ListedRun, client: MlflowClient):
    where = f"stage '{item.stage}' (metrics/{item.stage}/{item.key}.json) names MLflow run {item.run_id}"
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
