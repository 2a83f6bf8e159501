"""The ``compare`` stage: read the runs behind the current outputs, answer each question, write
the report, the CSVs behind ``dvc plots`` and ``metrics/compare.json``, and log it all to a
``compare`` MLflow run.

Outputs: ``reports/comparison.md`` (with ``reports/figures/*.png``), ``reports/comparison.csv``
(one row per run, every metric it logged), ``reports/summary.txt`` (what the terminal shows),
``plots/compare/*.csv``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from pipeline.compare import sections as questions
from pipeline.compare.plots import charts, write_charts
from pipeline.compare.report import markdown, mlflow_note, terminal_summary
from pipeline.compare.sources import PARADIGM_STAGES, fetch_runs, listed_runs, metric_curves, run_url, ui_url
from pipeline.compare.table import by_variant, shown
from pipeline.config.schema import Params
from pipeline.io import write_text
from pipeline.tracking.outputs import METRICS_DIR, PLOTS_DIR, write_csv
from pipeline.tracking.runs import resolve_tracking_uri, stage_run

STAGE = "compare"
SECTIONS = ("compare", "tracking")  # tracking: which store the runs are read from
REPORTS_DIR = Path("reports")
REPORT_ARTIFACTS = "comparison"
# The per-variant numbers metrics/compare.json keeps (timings and the resident-memory peak vary between runs).
KEPT = ("test/acc", "test/f1_macro", "data/labels_used", "params/trainable", "params/total",
        "memory/estimated_train_bytes", "memory/measured_state_bytes", "comm/bytes_total", "al/alc")
MLFLOW_NAME = re.compile(r"[^\w\-./ ]")  # characters MLflow refuses in a metric name


def run_compare(
    params: Params,
    metrics_dir: Path = METRICS_DIR,
    reports_dir: Path = REPORTS_DIR,
    plots_dir: Path = PLOTS_DIR / STAGE,
    stages: tuple[str, ...] = PARADIGM_STAGES,
) -> dict:
    """Returns what metrics/compare.json holds: the compare run (under ``runs``, as every stage's file has it),
    per-variant means (and stds over seeds), each question's numbers."""
    listed = listed_runs(metrics_dir, stages)  # first: a missing stage needs no store
    tracking_uri = resolve_tracking_uri(params.tracking)
    client = MlflowClient(tracking_uri)
    ui = ui_url(params.compare.ui_url, tracking_uri)
    runs = fetch_runs(listed, client, ui)
    table = by_variant(runs)
    tolerance = params.compare.memory_tolerance
    answered = [
        questions.every_run(table), questions.target_paradigms(table), questions.adapters(table), questions.multitask(table),
        questions.federated(table), questions.active_learning(table), questions.memory_check(table, tolerance),
    ]
    federated = runs[(runs.stage == "federated") & (runs.paradigm == "federated")]
    centralized = table[(table.stage == "federated") & (table.paradigm != "federated")]["test/acc"]
    drawn = charts(
        runs, metric_curves(client, federated, "test/acc"), centralized.iloc[0] if len(centralized) else None,
        metric_curves(client, runs[runs.stage == "active_learning"], "test/acc"), questions.multitask_comparison(table), tolerance,
    )
    reports_dir, figures_dir = Path(reports_dir), Path(reports_dir) / "figures"
    with stage_run(params, STAGE, paradigm=STAGE, variant="", sections=SECTIONS) as run:
        link = run_url(ui, run.info.experiment_id, run.info.run_id)
        images = write_charts(drawn, plots_dir, figures_dir)
        source = f"`{tracking_uri}`, experiment `{params.tracking.experiment}`, {len(runs)} runs"
        write_text(reports_dir / "comparison.md", markdown(answered, images, source, link))
        write_csv(reports_dir / "comparison.csv", runs.to_dict("records"), list(runs.columns))
        summary = terminal_summary(table, answered)
        write_text(reports_dir / "summary.txt", summary)
        numbers = {key: value for section in answered for key, value in section.metrics.items()}
        mlflow.log_metrics({MLFLOW_NAME.sub("_", key): value for key, value in numbers.items() if _finite(value)})
        mlflow.log_table(shown((row for _, row in table.iterrows()), questions.EVERY_RUN | {"MLflow": lambda row: " ".join(row["links"])}),
                         f"{REPORT_ARTIFACTS}/every_run.json")
        for name in ("comparison.md", "comparison.csv", "summary.txt"):
            mlflow.log_artifact(str(reports_dir / name), REPORT_ARTIFACTS)
        mlflow.log_artifacts(str(figures_dir), f"{REPORT_ARTIFACTS}/figures")
        mlflow.set_tag("mlflow.note.content", mlflow_note(answered, REPORT_ARTIFACTS))
    print(summary)
    return {"runs": {STAGE: {"run_id": run.info.run_id}}, "variants": _per_variant(table),
            "questions": {k: v for k, v in numbers.items() if _finite(v)}}


def _per_variant(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    kept = {}
    for _, row in table.iterrows():
        entry = {"seeds": int(row["seeds"])}
        for key in KEPT:
            if _finite(row.get(key)):
                entry[key] = float(row[key])
            if row["seeds"] > 1 and _finite(row.get(f"{key}:std")):
                entry[f"{key}:std"] = float(row[f"{key}:std"])
        kept[row["label"]] = entry
    return kept


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value) and not math.isinf(value)
