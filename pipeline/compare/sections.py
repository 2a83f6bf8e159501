"""One section of the report per question, each from the runs grouped by variant.

A section has a title, a paragraph that says what is compared and how, a table, a one-line
headline for the MLflow run's description, and its charts. A question whose runs are absent (a
stage configured without them) gets a section that says so. Two sections span every paradigm and
live here (every run; the memory check); each paradigm brings its own (its ``compare`` module,
named in its registry entry), built from :class:`Results` with the helpers below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from pipeline.compare.charts import Chart, accuracy_chart, memory_chart
from pipeline.compare.table import cell, markdown_table, number

Column = Callable[[pd.Series], str]


@dataclass
class Section:
    title: str
    text: str
    table: str
    headline: str = ""
    extra: str = ""  # further tables or notes after the main one
    metrics: dict[str, float] = field(default_factory=dict)  # headline numbers for metrics/compare.json
    charts: list[Chart] = field(default_factory=list)  # drawn under the section; their CSVs feed dvc plots


@dataclass(frozen=True)
class Results:
    """What a section reads: the runs grouped by variant, one row per run, and any metric's history."""

    table: pd.DataFrame  # one row per (stage, variant): each metric's mean, and its std over seeds
    runs: pd.DataFrame  # one row per run
    history: Callable[[pd.DataFrame, str], pd.DataFrame]  # (runs, metric) -> columns variant, seed, step, value

    def of(self, stage: str) -> pd.DataFrame:
        """The table's rows of one stage."""
        return self.table[self.table.stage == stage]


def col(metric: str, kind: str = "") -> Column:
    return lambda row: cell(row, metric, kind)


def linked(row: pd.Series) -> str:
    """Each of the row's runs (one per seed), as a link to it in the MLflow UI."""
    return " ".join(f"[{run_id[:8]}]({link})" for run_id, link in zip(row["run_ids"], row["links"]))


def seeds(row: pd.Series) -> str:
    return str(int(row["seeds"]))


def delta(metric: str, reference: float) -> Column:
    return lambda row: number(row.get(metric, math.nan) - reference, "signed")


def before_link(columns: dict[str, Column], header: str, show: Column) -> dict[str, Column]:
    """``columns`` with one more, placed before the MLflow link (which stays last)."""
    return {**{k: v for k, v in columns.items() if k != "MLflow"}, header: show, "MLflow": linked}


EVERY_RUN: dict[str, Column] = {
    "run": lambda row: row["label"],
    "task": lambda row: row["task"],
    "seeds": seeds,
    "test acc": col("test/acc"),
    "macro-F1": col("test/f1_macro"),
    "labels used": col("data/labels_used", "int"),
    "trainable params": col("params/trainable", "int"),
    "total params": col("params/total", "int"),
    "est. model state": col("memory/estimated_train_bytes", "bytes"),
    "measured model state": col("memory/measured_state_bytes", "bytes"),
    "measured peak": col("memory/peak_bytes", "bytes"),
    "fit s": col("time/fit_seconds", "s"),
    "bytes communicated": col("comm/bytes_total", "bytes"),
    "MLflow": linked,
}


def variant(row: pd.Series) -> str:
    """The variant alone, where a section shows one stage's runs."""
    return row["variant"]


def pick(*headers: str) -> dict[str, Column]:
    """The "every run" table's columns named by ``headers``, in that order: sections show them alike."""
    return {header: EVERY_RUN[header] for header in headers}


def every_run(results: Results) -> Section:
    return Section(
        "Every run",
        "One row per paradigm and variant. `task`: the data it trained and tested on (`source` and `target`: "
        "prepare's transfer split, `full`: every class). Only rows on the same task compare directly; the sections "
        "below put them side by side. `labels used`: labelled examples the result depended on (training labels, plus "
        "the validation labels where validation picked the epoch). `est. model state`: weights, gradients and "
        "optimizer state from the parameter count; `measured model state`: the same tensors counted after an "
        "optimizer step; `measured peak`: see the memory check.",
        markdown_table((row for _, row in results.table.iterrows()), EVERY_RUN),
        charts=[accuracy_chart(results.runs)],
    )


def memory_check(results: Results, tolerance: float) -> Section:
    title = "Memory check: estimated vs measured"
    table = results.table
    estimated, measured = table["memory/estimated_train_bytes"], table["memory/measured_state_bytes"]
    gap = (estimated - measured).abs() / measured
    checked = table.assign(gap=gap, within=gap <= tolerance)
    columns = {
        "run": lambda row: row["label"],
        "device": lambda row: row["device"],
        "est. model state": col("memory/estimated_train_bytes", "bytes"),
        "measured model state": col("memory/measured_state_bytes", "bytes"),
        "gap": lambda row: f"{row['gap']:.2%}",
        f"within {tolerance:.0%}": lambda row: "yes" if row["within"] else "**no**",
        "measured peak": col("memory/peak_bytes", "bytes"),
        "est. / peak": lambda row: number(
            row["memory/estimated_train_bytes"] / row["memory/peak_bytes"] if row["memory/peak_bytes"] else math.nan,
            "pct",
        ),
    }
    outside = int((~checked.within).sum())
    text = (
        "`est. model state` is the estimator's figure from the parameter count: weights (and buffers), one gradient "
        "per "
        "trainable parameter and the optimizer's state per trainable parameter. `measured model state` counts the "
        "bytes "
        f"of those very tensors right after an optimizer step; the two must agree within {tolerance:.0%} "
        "(`compare.memory_tolerance`). `measured peak` is the whole training's peak: on a GPU the CUDA allocator's "
        "peak "
        "(model state plus activations, the batch and workspace); on CPU the increase of the process's resident "
        "memory, "
        "which includes far more than model state (allocator slack, library buffers, Python objects) and differs from "
        "run "
        "to run, so compare it between runs with care."
    )
    headline = (
        f"{title}: {len(checked) - outside} of {len(checked)} runs within {tolerance:.0%} "
        f"(largest gap {gap.max():.2%})."
    )
    return Section(
        title,
        text,
        markdown_table((r for _, r in checked.iterrows()), columns),
        headline,
        metrics={
            "memory/runs_checked": len(checked),
            "memory/runs_outside_tolerance": outside,
            "memory/largest_state_gap": float(gap.max()),
        },
        charts=[memory_chart(results.runs, tolerance)],
    )
