"""One section of the report per question, each from the runs grouped by variant.

A section has a title, a paragraph that says what is compared and how, a table, and a
one-line headline for the MLflow run's description. A question whose runs are absent (a
stage configured without them) gets a section that says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

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


def every_run(table: pd.DataFrame) -> Section:
    return Section(
        "Every run",
        "One row per paradigm and variant. `task`: the data it trained and tested on (`source` and `target`: "
        "prepare's transfer split, `full`: every class). Only rows on the same task compare directly; the sections "
        "below put them side by side. `labels used`: labelled examples the result depended on (training labels, plus "
        "the validation labels where validation picked the epoch). `est. model state`: weights, gradients and "
        "optimizer state from the parameter count; `measured model state`: the same tensors counted after an "
        "optimizer step; `measured peak`: see the memory check.",
        markdown_table((row for _, row in table.iterrows()), EVERY_RUN),
    )


def target_paradigms(table: pd.DataFrame) -> Section:
    rows = table[(table.stage == "transfer") | (table.stage == "scratch")
                 | ((table.stage == "finetune") & table.variant.isin(["full", "partial"]))]
    title = "Transfer vs fine-tune vs scratch (target task)"
    if rows.empty:
        return Section(title, "No transfer, full or partial fine-tuning, or scratch runs.", "")
    scratch = rows[rows.stage == "scratch"]["test/acc"]
    base = table[table.stage == "pretrain"]
    text = "Same scarce target data, same target test split. Transfer trains new top layers on the frozen base; " \
           "fine-tuning trains the base's layers too; scratch is the same architecture from random weights."
    if not base.empty:
        text += f" The base was pretrained on {number(base.iloc[0]['data/labels_used'], 'int')} source labels (not counted below)."
    columns = {"run": lambda row: row["label"], "seeds": seeds, "test acc": col("test/acc"), "macro-F1": col("test/f1_macro"),
               "labels used": col("data/labels_used", "int"), "trainable params": col("params/trainable", "int"),
               "total params": col("params/total", "int"), "est. model state": col("memory/estimated_train_bytes", "bytes"),
               "fit s": col("time/fit_seconds", "s"), "MLflow": linked}
    metrics = {}
    if not scratch.empty:
        columns = before_link(columns, "Δ acc vs scratch", delta("test/acc", scratch.iloc[0]))
        metrics = {f"{row['label']}/acc_vs_scratch": row["test/acc"] - scratch.iloc[0] for _, row in rows.iterrows() if row.stage != "scratch"}
    best = rows.loc[rows["test/acc"].idxmax()]
    headline = f"{title}: best {best['label']} at {number(best['test/acc'])}"
    headline += f"; scratch {number(scratch.iloc[0])}." if not scratch.empty else "."
    return Section(title, text, markdown_table((r for _, r in rows.iterrows()), columns), headline, metrics=metrics)


def adapters(table: pd.DataFrame) -> Section:
    rows = table[table.stage == "finetune"]
    title = "Fine-tuning variants: full, partial and the adapters (LoRA, LoRA-FA, VeRA)"
    if rows.empty:
        return Section(title, "No fine-tuning runs.", "")
    full = rows[rows.variant == "full"]["test/acc"]
    columns = {"variant": lambda row: row["variant"], "seeds": seeds,
               "trainable params": col("params/trainable", "int"),
               "trainable share": lambda row: number(row["params/trainable"] / row["params/total"], "pct"),
               "test acc": col("test/acc"), "macro-F1": col("test/f1_macro"),
               "est. model state": col("memory/estimated_train_bytes", "bytes"),
               "saved model": col("model/checkpoint_bytes", "bytes"), "fit s": col("time/fit_seconds", "s"), "MLflow": linked}
    if not full.empty:
        columns = before_link(columns, "Δ acc vs full", delta("test/acc", full.iloc[0]))
    smallest = rows.loc[rows["params/trainable"].idxmin()]
    headline = (f"{title.split(':')[0]}: {smallest['variant']} trains {number(smallest['params/trainable'], 'int')} "
                f"parameters for {number(smallest['test/acc'])} accuracy"
                + (f" (full: {number(full.iloc[0])})." if not full.empty else "."))
    text = ("Every variant starts from the same base on the same target data. Adapters train few parameters and save "
            "only those (`saved model`); their weights and optimizer state shrink with them.")
    return Section(title, text, markdown_table((r for _, r in rows.iterrows()), columns), headline)


@dataclass(frozen=True)
class MultitaskComparison:
    tasks: list[str]
    shared_acc: list[float]
    separate_acc: list[float]
    ratios: dict[str, float]  # multitask cost / the separate models' summed cost


COSTS = {"params/total": ("total params", "int"), "memory/estimated_train_bytes": ("est. model state", "bytes"),
         "time/fit_seconds": ("fit s", "s")}


def multitask_comparison(table: pd.DataFrame) -> MultitaskComparison | None:
    shared = table[(table.stage == "multitask") & (table.paradigm == "multitask")]
    separate = table[(table.stage == "multitask") & (table.paradigm != "multitask")]
    if shared.empty or separate.empty:
        return None
    row = shared.iloc[0]
    tasks = [m.group(1) for key in table.columns if (m := re.fullmatch(r"test/([^/]+)/acc", key)) and not math.isnan(row[key])]
    alone = {task: separate[f"test/{task}/acc"].dropna() for task in tasks}
    tasks = [task for task in tasks if not alone[task].empty]
    ratios = {name: row[key] / separate[key].sum() for key, (name, _) in COSTS.items() if separate[key].sum() > 0}
    return MultitaskComparison(tasks, [row[f"test/{t}/acc"] for t in tasks], [alone[t].iloc[0] for t in tasks], ratios)


def multitask(table: pd.DataFrame) -> Section:
    title = "Multi-task vs separate models"
    found = multitask_comparison(table)
    if found is None:
        return Section(title, "No multi-task run with its separate models.", "")
    shared = table[(table.stage == "multitask") & (table.paradigm == "multitask")].iloc[0]
    separate = table[(table.stage == "multitask") & (table.paradigm != "multitask")]
    per_task = pd.DataFrame({
        "task": found.tasks,
        "multitask acc": [cell(shared, f"test/{t}/acc") for t in found.tasks],
        "separate model acc": [cell(separate[separate[f"test/{t}/acc"].notna()].iloc[0], f"test/{t}/acc") for t in found.tasks],
        "Δ": [number(a - b, "signed") for a, b in zip(found.shared_acc, found.separate_acc)],
    }).to_markdown(index=False, disable_numparse=True)
    costs = pd.DataFrame({
        "cost": [name for name, _ in COSTS.values()],
        "multitask (one network)": [number(shared[key], kind) for key, (_, kind) in COSTS.items()],
        f"separate ({len(separate)} models, summed)": [number(separate[key].sum(), kind) for key, (_, kind) in COSTS.items()],
        "ratio": [number(found.ratios.get(name, math.nan), "") for name, _ in COSTS.values()],
    }).to_markdown(index=False, disable_numparse=True)
    gains = ", ".join(f"{t} {a - b:+.3f}" for t, a, b in zip(found.tasks, found.shared_acc, found.separate_acc))
    return Section(
        title,
        "One network with a shared body and a branch per task, against one separate model per task, same data and "
        "trainer budget. Accuracy per task on the full test split; costs of the one network against the separate models "
        "together.",
        per_task,
        f"{title}: accuracy Δ per task {gains}; parameters ×{found.ratios.get('total params', math.nan):.2f}.",
        extra=costs,
        metrics={f"multitask/{t}/acc_vs_separate": a - b for t, a, b in zip(found.tasks, found.shared_acc, found.separate_acc)},
    )


def federated(table: pd.DataFrame) -> Section:
    title = "Federated (IID, non-IID, strategies) vs centralised"
    rows = table[table.stage == "federated"]
    fl = rows[rows.paradigm == "federated"]
    if fl.empty:
        return Section(title, "No federated runs.", "")
    central = rows[rows.paradigm != "federated"]["test/acc"]
    columns = {"run": lambda row: row["variant"], "seeds": seeds, "test acc": col("test/acc"), "macro-F1": col("test/f1_macro"),
               "bytes communicated": col("comm/bytes_total", "bytes"), "labels used": col("data/labels_used", "int"),
               "fit s": col("time/fit_seconds", "s"), "MLflow": linked}
    metrics, headline = {}, f"{title}: best {fl.loc[fl['test/acc'].idxmax(), 'variant']} at {number(fl['test/acc'].max())}"
    if not central.empty:
        columns = before_link(columns, "Δ acc vs centralised", delta("test/acc", central.iloc[0]))
        metrics = {f"federated/{row['variant']}/acc_vs_centralized": row["test/acc"] - central.iloc[0] for _, row in fl.iterrows()}
        headline += f"; centralised {number(central.iloc[0])}."
    text = ("Clients hold prepare's partitions of the full training split: `iid`, or skewed by label (`dirichlet`, `shards`); "
            "only model updates travel. The global model after the last round is tested on the full test split. "
            "Centralised training pools the same data with the same model, start and epoch budget.")
    return Section(title, text, markdown_table((r for _, r in rows.iterrows()), columns), headline, metrics=metrics)


def active_learning(table: pd.DataFrame) -> Section:
    title = "Active-learning strategies vs random"
    rows = table[table.stage == "active_learning"]
    if rows.empty:
        return Section(title, "No active-learning runs.", "")
    columns = {"strategy": lambda row: row["variant"], "seeds": seeds, "final test acc": col("test/acc"),
               "labels used": col("data/labels_used", "int"), "area under curve": col("al/alc"),
               "labels to target": col("al/labels_to_target", "int"),
               "share of random's labels": col("al/label_share_vs_random", "pct"),
               "area gain vs random": col("al/alc_gain_vs_random", "signed"), "MLflow": linked}
    best = rows.loc[rows["al/alc"].idxmax()]
    text = ("Every strategy starts from the same labelled seed set and labels the same number of examples per round; "
            "`random` is the control. `area under curve`: mean test accuracy over the labels spanned; `labels to target`: "
            "fewest labels reaching the target accuracy (by default random's final one).")
    return Section(title, text, markdown_table((r for _, r in rows.iterrows()), columns),
                   f"{title}: largest area under the curve {best['variant']} ({number(best['al/alc'])}).",
                   metrics={f"active_learning/{row['variant']}/alc": row["al/alc"] for _, row in rows.iterrows()})


def memory_check(table: pd.DataFrame, tolerance: float) -> Section:
    title = "Memory check: estimated vs measured"
    estimated, measured = table["memory/estimated_train_bytes"], table["memory/measured_state_bytes"]
    gap = (estimated - measured).abs() / measured
    checked = table.assign(gap=gap, within=gap <= tolerance)
    columns = {"run": lambda row: row["label"], "device": lambda row: row["device"],
               "est. model state": col("memory/estimated_train_bytes", "bytes"),
               "measured model state": col("memory/measured_state_bytes", "bytes"),
               "gap": lambda row: f"{row['gap']:.2%}", f"within {tolerance:.0%}": lambda row: "yes" if row["within"] else "**no**",
               "measured peak": col("memory/peak_bytes", "bytes"), "est. / peak": lambda row: number(
                   row["memory/estimated_train_bytes"] / row["memory/peak_bytes"] if row["memory/peak_bytes"] else math.nan, "pct")}
    outside = int((~checked.within).sum())
    text = (
        "`est. model state` is the estimator's figure from the parameter count: weights (and buffers), one gradient per "
        "trainable parameter and the optimizer's state per trainable parameter. `measured model state` counts the bytes "
        f"of those very tensors right after an optimizer step; the two must agree within {tolerance:.0%} "
        "(`compare.memory_tolerance`). `measured peak` is the whole training's peak: on a GPU the CUDA allocator's peak "
        "(model state plus activations, the batch and workspace); on CPU the increase of the process's resident memory, "
        "which includes far more than model state (allocator slack, library buffers, Python objects) and differs from run "
        "to run, so compare it between runs with care."
    )
    headline = (f"{title}: {len(checked) - outside} of {len(checked)} runs within {tolerance:.0%} "
                f"(largest gap {gap.max():.2%}).")
    return Section(title, text, markdown_table((r for _, r in checked.iterrows()), columns), headline,
                   metrics={"memory/runs_checked": len(checked), "memory/runs_outside_tolerance": outside,
                            "memory/largest_state_gap": float(gap.max())})
