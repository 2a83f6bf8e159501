"""The ``compare`` stage: read the runs behind the current outputs, answer each question, write
the report, the CSVs behind ``dvc plots`` and each question's champion under ``metrics/compare/``, and log it all to
a ``compare`` MLflow run.

Each question's winner is registered as its champion in the MLflow Model Registry
(:mod:`pipeline.compare.registry`; ``tracking.register``).

Outputs: ``reports/comparison.md`` (with ``reports/figures/*.png``), ``reports/comparison.csv``
(one row per run, every metric it logged), ``reports/summary.txt`` (what the terminal shows),
``plots/compare/*.csv``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from pipeline.compare.deployment import deployment_cost
from pipeline.compare.registry import register_champions
from pipeline.compare.report import markdown, mlflow_note, terminal_summary
from pipeline.compare.sources import (
    experiment_url,
    fetch_predictions,
    fetch_runs,
    listed_runs,
    metric_curves,
    run_url,
    ui_url,
)
from pipeline.credentials import masked
from pipeline.io import write_text
from pipeline.paradigms import paradigms
from pipeline.params import DEFAULT_PARAMS_FILE, Params
from pipeline.paths import METRICS_DIR, PLOTS_DIR, REPORTS_DIR, metrics_dir_of
from pipeline.reporting.charts import write_charts
from pipeline.reporting.headline import Champion
from pipeline.reporting.results import Results
from pipeline.reporting.sections import EVERY_RUN, every_run, memory_check
from pipeline.reporting.table import by_variant, shown
from pipeline.tracking.outputs import write_csv, write_metrics_dir
from pipeline.tracking.runs import RunSpec, stage_run
from pipeline.tracking.store import resolve_tracking_uri
from pipeline.tracking.workspace import why_experiment

SPEC = RunSpec("compare", "compare", "", ("compare", "tracking"))  # tracking: which store the runs are read from
STAGE = SPEC.stage
REPORT_ARTIFACTS = "comparison"
NO_CHAMPION = "no_champion"  # metrics/compare/no_champion.json: no question named a winner (each stage warned)
MLFLOW_NAME = re.compile(r"[^\w\-./ ]")  # characters MLflow refuses in a metric name


def run_compare(
    params: Params,
    metrics_dir: Path = METRICS_DIR,
    reports_dir: Path = REPORTS_DIR,
    plots_dir: Path = PLOTS_DIR / STAGE,
) -> Compared:
    """Every registered paradigm's runs side by side, each with its own section of the report."""
    entries = paradigms()
    listed, skipped = listed_runs(metrics_dir, tuple(p.stage for p in entries))  # first: a missing stage needs no store
    tracking_uri = resolve_tracking_uri(params.tracking)
    client = MlflowClient(tracking_uri)
    ui = ui_url(params.compare.ui_url, tracking_uri)
    runs = fetch_runs(listed, client, ui, {p.stage: p.task for p in entries})
    results = Results(
        by_variant(runs),
        runs,
        lambda chosen, key: metric_curves(client, chosen, key),
        functools.cache(lambda run_id: fetch_predictions(client, run_id)),  # each run's answers read once
        skipped,
    )
    answered = [every_run(results)]
    answered += [p.compare.load()(results) for p in entries if p.compare is not None]
    answered.append(deployment_cost(results))
    answered.append(memory_check(results, params.compare.memory_tolerance, params.compare.activation_tolerance))
    table = results.table
    reports_dir, figures_dir = Path(reports_dir), Path(reports_dir) / "figures"
    with stage_run(params, SPEC) as run:
        champions = [section.champion for section in answered if section.champion is not None]
        why = why_experiment(DEFAULT_PARAMS_FILE, params.data)  # an experiment's winners are challengers
        registered = (  # first: a registry that refuses fails the stage before it writes anything
            register_champions(client, params.tracking.experiment, champions, run.info.run_id, why)
            if params.tracking.register
            else []
        )
        link = run_url(ui, run.info.experiment_id, run.info.run_id)
        images = write_charts([chart for section in answered for chart in section.charts], plots_dir, figures_dir)
        source = f"`{masked(tracking_uri)}`, experiment `{params.tracking.experiment}`, {len(runs)} runs"
        write_text(reports_dir / "comparison.md", markdown(answered, images, source, link, why))
        write_csv(reports_dir / "comparison.csv", runs.to_dict("records"), list(runs.columns))
        summary = terminal_summary(table, answered, why)
        summary += "".join(f"registry: {entry.line()}\n" for entry in registered)
        summary += f"\nThe runs in the MLflow UI: {experiment_url(ui, run.info.experiment_id)}\n"
        write_text(reports_dir / "summary.txt", summary)
        numbers = {key: value for section in answered for key, value in section.metrics.items()}
        mlflow.log_metrics({MLFLOW_NAME.sub("_", key): value for key, value in numbers.items() if _finite(value)})
        every = EVERY_RUN | {"MLflow": lambda row: " ".join(row["links"])}
        mlflow.log_table(shown((row for _, row in table.iterrows()), every), f"{REPORT_ARTIFACTS}/every_run.json")
        for name in ("comparison.md", "comparison.csv", "summary.txt"):
            mlflow.log_artifact(str(reports_dir / name), REPORT_ARTIFACTS)
        mlflow.log_artifacts(str(figures_dir), f"{REPORT_ARTIFACTS}/figures")
        mlflow.set_tag("mlflow.note.content", mlflow_note(answered, REPORT_ARTIFACTS, why))
    print(summary)
    return Compared(run.info.run_id, champions, {k: v for k, v in numbers.items() if _finite(v)}, table)


@dataclass(frozen=True)
class Compared:
    """What a comparison found: its MLflow run, each question's champion, the numbers it logged to that run, and the
    runs by variant (each metric's mean and std over seeds)."""

    run_id: str
    champions: list[Champion]
    numbers: dict[str, float]
    table: pd.DataFrame

    def dvc_metrics(self) -> dict[str, dict]:
        """Per question with a champion, ``metrics/compare/<question>.json``: the winner's label, and the compare run
        (a list, which DVC's tables leave out); one file saying so when no question named a winner. Every number
        stays in the compare run and the report: a file per question keeps `dvc metrics show` narrow."""
        ran = [self.run_id]
        if not self.champions:
            return {NO_CHAMPION: {"run_ids": ran, NO_CHAMPION: ["no question named a winner; see the report"]}}
        return {champion.question: {"winner": champion.label, "run_ids": ran} for champion in self.champions}


def write_champions(compared: Compared, metrics_dir: Path = METRICS_DIR) -> Path:
    """``metrics/compare/``, replaced whole: a question that no longer has a champion leaves no file."""
    return write_metrics_dir(metrics_dir_of(STAGE, metrics_dir), compared.dvc_metrics())


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value) and not math.isinf(value)
