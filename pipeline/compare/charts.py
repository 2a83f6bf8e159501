"""The comparison's charts, each twice from the same numbers: a CSV for ``dvc plots`` and a PNG for the
report and the MLflow run. Each section brings its own (:attr:`pipeline.compare.sections.Section.charts`);
here are what they are made of, and the two that span every paradigm:

- accuracy vs trainable parameters, one point per run;
- estimated vs measured model-state memory, one point per run (equal on the diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
from matplotlib.figure import Figure

from pipeline.io import atomic_path
from pipeline.tracking import figures
from pipeline.tracking.outputs import write_csv

RUN_COLUMNS = ["run", "paradigm", "params/trainable", "test/acc", "memory/estimated_train_bytes",
               "memory/measured_state_bytes", "memory/peak_bytes"]  # fmt: skip


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
    groups = {p: (list(g["params/trainable"]), list(g["test/acc"])) for p, g in points.groupby("paradigm", sort=False)}
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
    groups = {
        p: (list(g["memory/estimated_train_bytes"]), list(g["memory/measured_state_bytes"]))
        for p, g in points.groupby("paradigm", sort=False)
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
