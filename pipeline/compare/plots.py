"""The comparison's charts, each twice from the same numbers: a CSV for ``dvc plots`` and a PNG
for the report and the MLflow run.

- accuracy vs trainable parameters, one point per run;
- estimated vs measured model-state memory, one point per run (equal on the diagonal);
- federated global test accuracy per round, every federated run (centralised drawn flat);
- active-learning test accuracy vs labels, every strategy (random dashed);
- multi-task vs separate models: test accuracy per task, and cost ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
from matplotlib.figure import Figure

from pipeline.compare.sections import MultitaskComparison
from pipeline.io import atomic_path
from pipeline.tracking import figures
from pipeline.tracking.outputs import write_csv

RUN_COLUMNS = ["run", "paradigm", "params/trainable", "test/acc", "memory/estimated_train_bytes",
               "memory/measured_state_bytes", "memory/peak_bytes"]
CONTROL = "random"


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


def mean_curves(curves: pd.DataFrame, x: str) -> pd.DataFrame:
    """Per variant and step, the mean over seeds: columns variant, ``x``, test/acc."""
    mean = curves.groupby(["variant", "step"], sort=False)["value"].mean().reset_index()
    return mean.rename(columns={"step": x, "value": "test/acc"})


def charts(runs: pd.DataFrame, federated: pd.DataFrame, centralized_acc: Optional[float], active: pd.DataFrame,
           multitask: Optional[MultitaskComparison], tolerance: float) -> list[Chart]:
    points = per_run_points(runs)
    by_paradigm = {p: (list(g["params/trainable"]), list(g["test/acc"])) for p, g in points.groupby("paradigm", sort=False)}
    memory = {p: (list(g["memory/estimated_train_bytes"]), list(g["memory/measured_state_bytes"]))
              for p, g in points.groupby("paradigm", sort=False)}
    found = [
        Chart("accuracy_vs_trainable_params", "runs.csv", points, figures.points_by_group_figure(
            by_paradigm, "trainable parameters (log)", "test accuracy", "test accuracy vs trainable parameters, one point per run")),
        Chart("memory_estimated_vs_measured", "runs.csv", points, figures.points_by_group_figure(
            memory, "estimated model state (bytes)", "measured model state (bytes)",
            "model-state memory: estimated vs measured", diagonal_band=tolerance)),
    ]
    rounds = mean_curves(federated, "round")
    if not rounds.empty and centralized_acc is not None:
        flat = pd.DataFrame({"variant": "centralized (final)", "round": sorted(rounds["round"].unique()), "test/acc": centralized_acc})
        rounds = pd.concat([rounds, flat], ignore_index=True)
    found.append(Chart("federated_rounds", "federated_rounds.csv", rounds, _curves(
        rounds, "round", "round", "federated: global test accuracy per round",
        reference=("centralised", centralized_acc) if centralized_acc is not None else None)))
    labels = mean_curves(active, "labels")
    found.append(Chart("active_learning_curves", "active_learning.csv", labels, _curves(
        labels, "labels", "labels used", "active learning: test accuracy vs labels", control=CONTROL)))
    bars = pd.DataFrame(columns=["label", "test/acc"])
    figure = None
    if multitask is not None:
        bars = pd.DataFrame(
            [{"label": f"{task}: {model}", "test/acc": acc}
             for task, shared, alone in zip(multitask.tasks, multitask.shared_acc, multitask.separate_acc)
             for model, acc in (("multitask", shared), ("separate", alone))])
        figure = figures.multitask_comparison_figure(multitask.tasks, multitask.shared_acc, multitask.separate_acc, multitask.ratios)
    found.append(Chart("multitask_vs_separate", "multitask.csv", bars, figure))
    return found


def _curves(rows: pd.DataFrame, x: str, xlabel: str, title: str, control: Optional[str] = None,
            reference: Optional[tuple[str, float]] = None) -> Optional[Figure]:
    drawn = rows[~rows["variant"].str.startswith("centralized")]
    if drawn.empty:
        return None
    curves = {v: (list(g[x]), list(g["test/acc"])) for v, g in drawn.groupby("variant", sort=False)}
    return figures.curves_figure(curves, xlabel, title, control, reference)


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
