"""The comparison's charts, each twice from the same numbers: a CSV for ``dvc plots`` and a PNG for the
report and the MLflow run. Each section brings its own (:attr:`pipeline.reporting.sections.Section.charts`);
here are what they are made of, and the two that span every paradigm:

- accuracy vs trainable parameters, one point per run (a model compressed after training trains nothing: its
  point is in the CSV only, a log axis has no 0);
- estimated vs measured model-state memory, one point per run that holds training state (equal on the diagonal);

and the deployment section's: accuracy against size on disk and against batch-1 latency, one point per variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
from matplotlib.figure import Figure

from pipeline.deployment.cost import SIZE_METRIC
from pipeline.deployment.inference import LATENCY_P50
from pipeline.io import atomic_path
from pipeline.tracking import figures
from pipeline.tracking.outputs import write_csv

RUN_COLUMNS = ["run", "paradigm", "params/trainable", "test/acc", "memory/estimated_train_bytes",
               "memory/measured_state_bytes", "memory/peak_bytes"]  # fmt: skip
DEPLOYMENT_COLUMNS = ["run", "task", "test/acc", SIZE_METRIC, LATENCY_P50, "on_size_front", "on_latency_front"]


@dataclass
class Chart:
    name: str  # the PNG's file stem
    csv: str  # the CSV under plots/compare/
    rows: pd.DataFrame
    figure: Optional[Figure]


def per_run_points(runs: pd.DataFrame) -> pd.DataFrame:
    several = runs.groupby("label")["seed"].transform("nunique") > 1
    named = runs["label"].where(~several, runs["label"] + "@seed" + runs["seed"].astype(str))
    return runs.assign(run=named, paradigm=runs["stage"]).reindex(columns=RUN_COLUMNS)


def accuracy_chart(runs: pd.DataFrame) -> Chart:
    points = per_run_points(runs)
    drawn = points[points["params/trainable"] > 0]
    groups = {p: (list(g["params/trainable"]), list(g["test/acc"])) for p, g in drawn.groupby("paradigm", sort=False)}
    return Chart(
        "accuracy_vs_trainable_params",
        "runs.csv",
        points,
        figures.points_by_group_figure(
            groups,
            "trainable parameters (log)",
            "test accuracy",
            "test accuracy vs trainable parameters, one point per run",
        ),
    )


def memory_chart(runs: pd.DataFrame, tolerance: float) -> Chart:
    points = per_run_points(runs)
    drawn = points.dropna(subset=["memory/estimated_train_bytes", "memory/measured_state_bytes"])
    groups = {
        p: (list(g["memory/estimated_train_bytes"]), list(g["memory/measured_state_bytes"]))
        for p, g in drawn.groupby("paradigm", sort=False)
    }
    return Chart(
        "memory_estimated_vs_measured",
        "runs.csv",
        points,
        figures.points_by_group_figure(
            groups,
            "estimated model state (bytes)",
            "measured model state (bytes)",
            "model-state memory: estimated vs measured",
            diagonal_band=tolerance,
        ),
    )


def deployment_chart(rows: pd.DataFrame) -> Chart:
    """Test accuracy against size on disk and against batch-1 latency p50, one point per variant and one colour per
    task, each task's Pareto front marked (``rows``: the table's, with ``on_size_front`` and ``on_latency_front``)."""
    points = rows.rename(columns={"label": "run"}).reindex(columns=DEPLOYMENT_COLUMNS)
    panels = {}
    for cost, front, xlabel in (
        (SIZE_METRIC, "on_size_front", "size on disk (bytes, log)"),
        (LATENCY_P50, "on_latency_front", "batch-1 latency p50 (ms, log)"),
    ):
        drawn = points[(points[cost] > 0) & points["test/acc"].notna()]
        panels[xlabel] = {
            task: (list(g[cost]), list(g["test/acc"]), [bool(f) for f in g[front]])
            for task, g in drawn.groupby("task", sort=False)
        }
    figure = None
    if any(panels.values()):
        figure = figures.pareto_figure(panels, "test accuracy", "test accuracy vs deployment cost, one point per run")
    return Chart("deployment_pareto", "deployment.csv", points, figure)


def mean_curves(curves: pd.DataFrame, x: str) -> pd.DataFrame:
    """Per variant and step, the mean over seeds: columns variant, ``x``, test/acc."""
    mean = curves.groupby(["variant", "step"], sort=False)["value"].mean().reset_index()
    return mean.rename(columns={"step": x, "value": "test/acc"})


def curves_chart(
    name: str,
    csv: str,
    rows: pd.DataFrame,
    x: str,
    xlabel: str,
    title: str,
    control: Optional[str] = None,
    reference: Optional[tuple[str, float]] = None,
) -> Chart:
    """Test accuracy against ``x``, one line per variant (rows of a ``centralized`` reference go in the CSV only)."""
    drawn = rows[~rows["variant"].str.startswith("centralized")]
    figure = None
    if not drawn.empty:
        curves = {v: (list(g[x]), list(g["test/acc"])) for v, g in drawn.groupby("variant", sort=False)}
        figure = figures.curves_figure(curves, xlabel, title, control, reference)
    return Chart(name, csv, rows, figure)


def write_charts(found: list[Chart], plots_dir: Path, figures_dir: Path) -> list[Path]:
    """The CSVs (each once, with its header even when empty) and the PNGs; returns the PNGs written."""
    written: dict[str, pd.DataFrame] = {}
    images = []
    for chart in found:
        written.setdefault(chart.csv, chart.rows)
        if chart.figure is not None:
            path = Path(figures_dir) / f"{chart.name}.png"
            with atomic_path(path) as tmp:
                chart.figure.savefig(tmp, dpi=110)
            figures.close(chart.figure)
            images.append(path)
    for name, rows in written.items():
        write_csv(Path(plots_dir) / name, rows.to_dict("records"), list(rows.columns))
    return images
