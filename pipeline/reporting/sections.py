"""One section of the report per question, each from the runs grouped by variant.

A section has a title, a paragraph that says what is compared and how, a table, a one-line
headline for the MLflow run's description, and its charts. A question whose runs are absent (a
stage configured without them) gets a section that says so. Two sections span every paradigm and
live here (every run; the memory check), a third in :mod:`pipeline.compare.deployment` (what each saved
model costs to serve); each paradigm brings its own (its ``compare`` module, named in its registry
entry), built from :class:`Results` with the helpers below.

A section that names a winner or a difference words it through :mod:`pipeline.reporting.headline`, so every
section says it alike; :func:`epochs` is a table column of its own, and :func:`flag_sanity` replaces the verdict
with the warning when a stage said its results are near chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import pandas as pd

from pipeline.reporting.charts import Chart, accuracy_chart, memory_chart
from pipeline.reporting.headline import Champion
from pipeline.reporting.results import Results
from pipeline.reporting.table import Column, cell, markdown_table, number


@dataclass
class Section:
    title: str
    text: str
    table: str
    headline: str = ""
    extra: str = ""  # further tables or notes after the main one
    metrics: dict[str, float] = field(default_factory=dict)  # the numbers it logs to the compare run
    charts: list[Chart] = field(default_factory=list)  # drawn under the section; their CSVs feed dvc plots
    champion: Optional[Champion] = None  # the run this section's question picks, registered by the compare stage


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


# A run that trained under this share of its partner's epochs stopped "far earlier" (22 epochs against 43 is one).
EARLY = 2 / 3


def epochs(results: Results, rows: pd.DataFrame) -> Column:
    """A table column: epochs trained of the cap, marked where a run stopped at the cap (it may be under-trained)
    or under :data:`EARLY` of the epochs of the section's longest-training row (then the two are not like for
    like)."""
    trained = rows.dropna(subset=["train/epochs"])
    longest = trained.loc[trained["train/epochs"].idxmax()] if not trained.empty else None

    def show(row: pd.Series) -> str:
        if math.isnan(row.get("train/epochs", math.nan)):
            return "–"
        runs = results.runs[results.runs.run_id.isin(row["run_ids"])]
        text = f"{cell(row, 'train/epochs', 'int')} of {number(row['train/max_epochs'], 'int')}"
        capped = int((runs["train/epochs"] >= runs["train/max_epochs"]).sum()) if "train/epochs" in runs else 0
        if capped:
            some = "" if capped == len(runs) else f" on {capped} of {len(runs)} seeds"
            text += f"; hit cap{some}: may be under-trained"
        if longest is not None and row["train/epochs"] < EARLY * longest["train/epochs"]:
            text += f"; stopped early: under ⅔ of {longest['label']}'s {number(longest['train/epochs'], 'int')}"
        return text

    return show


def sanity_warning(rows: pd.DataFrame) -> str:
    """The warnings the rows' stages set (their ``sanity`` tag), joined; "" when all is well."""
    found = rows["sanity"] if "sanity" in rows else []
    return "; ".join(dict.fromkeys(w for w in found if isinstance(w, str) and w))


def flag_sanity(section: Section, rows: pd.DataFrame) -> Section:
    """``section`` as it is, unless a stage warned that some of ``rows`` are near chance or below trivial
    baselines: then its headline names no winner but the warning, its text says so, and it has no champion."""
    warning = sanity_warning(rows)
    if not warning:
        return section
    return replace(
        section,
        champion=None,  # nothing to register either
        headline=f"{section.title.split(':')[0]}: no winner named: {warning}",
        text=f"{section.text}\n\n**No winner named.** The sanity check of these runs' stage warns: {warning}",
    )


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


def memory_check(results: Results, tolerance: float, activation_tolerance: float) -> Section:
    title = "Memory check: estimated vs measured"
    state = ["memory/estimated_train_bytes", "memory/measured_state_bytes"]
    table = results.table.dropna(subset=state)  # a model compressed after training holds no training state
    left_out = results.table.loc[results.table.index.difference(table.index), "label"]
    estimated, measured = table["memory/estimated_train_bytes"], table["memory/measured_state_bytes"]
    gap = (estimated - measured).abs() / measured
    checked = table.assign(gap=gap, within=gap <= tolerance)
    on_gpu = checked["device"].fillna("").str.startswith("cuda")
    columns = {
        "run": lambda row: row["label"],
        "device": lambda row: row["device"],
        "est. model state": col("memory/estimated_train_bytes", "bytes"),
        "measured model state": col("memory/measured_state_bytes", "bytes"),
        "gap": lambda row: f"{row['gap']:.2%}",
        f"within {tolerance:.0%}": lambda row: "yes" if row["within"] else "**no**",
        "measured peak": col("memory/peak_bytes", "bytes"),
    }
    columns["est. / peak"] = lambda row: (  # either device's peak holds the model state
        number(row["memory/estimated_train_bytes"] / row["memory/peak_bytes"], "pct")
        if row["memory/peak_bytes"]
        else "–"
    )
    outside = int((~checked.within).sum())
    text = (
        "`est. model state` is the estimator's figure from the parameter count: weights (and buffers), one gradient "
        "per trainable parameter and the optimizer's state per trainable parameter. `measured model state` counts the "
        f"bytes of those very tensors right after an optimizer step; the two must agree within {tolerance:.0%} "
        "(`compare.memory_tolerance`). `measured peak` is a training's peak of tensor memory, model state "
        "included; `est. / peak` is the share of it the model state accounts for."
    )
    if on_gpu.any():
        text += (
            " On a GPU (device `cuda…`) it is the CUDA allocator's peak over the whole training: model state plus "
            "activations, the batch and workspace."
        )
    if not on_gpu.all():
        text += (
            " On the CPU it is the peak of live tensor bytes over the first optimizer steps (the weights, then "
            "gradients, optimizer state, activations, the batch and temporaries, each counted from its creation to its "
            "release): the first step allocates the optimizer state and every later one repeats the same allocations. "
            "The process's resident memory would be no measure: its rise over a small model's run is the allocator's "
            "and the libraries' noise."
        )
    if len(left_out):
        text += (
            " Models compressed after training (int8, fp16, an evaluated reference) hold no training state, so they "
            f"have neither figure and are left out: {', '.join(left_out)}."
        )
    text += (
        " `memory/rule_12n_bytes`, logged beside the estimate, is the rule of thumb of (2 + 2 + 4 + 4) bytes per "
        "parameter: half-precision weights and gradients with fp32 Adam moments. The exact estimate differs from it "
        "because training here keeps fp32 weights and gradients even under mixed precision (autocast makes "
        "short-lived half copies, `memory/autocast_copies_bytes`, instead of a second, master copy), counts buffers "
        "(batch-norm statistics), and gives frozen parameters no gradient or optimizer state: a frozen body costs "
        "4 bytes a weight, not 12."
    )
    activations, extra = activation_check(results.table, activation_tolerance)
    headline = f"{title}: {len(checked) - outside} of {len(checked)} runs within {tolerance:.0%}"
    headline += f" (largest gap {gap.max():.2%})" if len(checked) else ""
    ran, off = activations["memory/activation_runs_checked"], activations["memory/activation_runs_outside_tolerance"]
    headline += f"; activations: {ran - off:.0f} of {ran:.0f} runs within {activation_tolerance:.0%}."
    return Section(
        title,
        text,
        markdown_table((r for _, r in checked.iterrows()), columns),
        headline,
        extra=extra,
        metrics={
            "memory/runs_checked": len(checked),
            "memory/runs_outside_tolerance": outside,
            "memory/largest_state_gap": float(gap.max()),
            **activations,
        },
        charts=[memory_chart(results.runs, tolerance)],
    )


ACTIVATIONS = ["memory/activation_bytes_estimated", "memory/activation_bytes_measured"]


def activation_check(table: pd.DataFrame, tolerance: float) -> tuple[dict[str, float], str]:
    """Predicted against measured activation bytes, per run that has both: the section's numbers and its table."""
    table = table.reindex(columns=[*table.columns, *(c for c in ACTIVATIONS if c not in table.columns)])
    rows = table.dropna(subset=ACTIVATIONS)
    estimated, measured = rows[ACTIVATIONS[0]], rows[ACTIVATIONS[1]]
    gap = (estimated - measured).abs() / measured.where(measured > 0)
    checked = rows.assign(gap=gap.fillna(0.0), within=gap.fillna(0.0) <= tolerance)
    columns = {
        "run": lambda row: row["label"],
        "device": lambda row: row["device"],
        "predicted activations": col(ACTIVATIONS[0], "bytes"),
        "measured activations": col(ACTIVATIONS[1], "bytes"),
        "gap": lambda row: f"{row['gap']:.2%}",
        f"within {tolerance:.0%}": lambda row: "yes" if row["within"] else "**no**",
    }
    outside = int((~checked.within).sum())
    text = (
        "**Activations.** What one training step's forward pass and loss keep for the backward pass (one full batch, "
        "model state left out: `pipeline/memory/activations.py`). `predicted` runs the same forward pass and loss on "
        "PyTorch's `meta` device before training, from the architecture and the batch size alone; `measured` counts "
        "the tensors autograd saves during the first real training step, each storage once. They must agree within "
        f"{tolerance:.0%} (`compare.activation_tolerance`); they part where the run does what the architecture does "
        "not say: autocast's half-precision copies under mixed precision, GPU kernels that save workspace. Federated "
        "and active-learning runs report one client's or one round's step."
    )
    numbers = {
        "memory/activation_runs_checked": len(checked),
        "memory/activation_runs_outside_tolerance": outside,
        "memory/largest_activation_gap": float(checked["gap"].max()) if len(checked) else 0.0,
    }
    return numbers, f"{text}\n\n{markdown_table((r for _, r in checked.iterrows()), columns)}"
