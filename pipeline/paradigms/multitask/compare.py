"""The report's section on multi-task learning: accuracy per task and the costs of one shared network
against the separate single-task models together, with its chart."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from pipeline.compare.charts import Chart
from pipeline.compare.sections import Results, Section
from pipeline.compare.table import cell, number
from pipeline.tracking import figures

TITLE = "Multi-task vs separate models"
COSTS = {"params/total": ("total params", "int"), "memory/estimated_train_bytes": ("est. model state", "bytes"),
         "time/fit_seconds": ("fit s", "s")}  # fmt: skip


@dataclass(frozen=True)
class MultitaskComparison:
    tasks: list[str]
    shared_acc: list[float]
    separate_acc: list[float]
    ratios: dict[str, float]  # multitask cost / the separate models' summed cost


def multitask_comparison(table: pd.DataFrame) -> MultitaskComparison | None:
    shared = table[(table.stage == "multitask") & (table.paradigm == "multitask")]
    separate = table[(table.stage == "multitask") & (table.paradigm != "multitask")]
    if shared.empty or separate.empty:
        return None
    row = shared.iloc[0]
    tasks = [
        m.group(1)
        for key in table.columns
        if (m := re.fullmatch(r"test/([^/]+)/acc", key)) and not math.isnan(row[key])
    ]
    alone = {task: separate[f"test/{task}/acc"].dropna() for task in tasks}
    tasks = [task for task in tasks if not alone[task].empty]
    ratios = {name: row[key] / separate[key].sum() for key, (name, _) in COSTS.items() if separate[key].sum() > 0}
    return MultitaskComparison(tasks, [row[f"test/{t}/acc"] for t in tasks], [alone[t].iloc[0] for t in tasks], ratios)


def compare_with_separate_models(results: Results) -> Section:
    table = results.table
    found = multitask_comparison(table)
    if found is None:
        return Section(TITLE, "No multi-task run with its separate models.", "", charts=[_chart(None)])
    shared = table[(table.stage == "multitask") & (table.paradigm == "multitask")].iloc[0]
    separate = table[(table.stage == "multitask") & (table.paradigm != "multitask")]
    per_task = pd.DataFrame(
        {
            "task": found.tasks,
            "multitask acc": [cell(shared, f"test/{t}/acc") for t in found.tasks],
            "separate model acc": [
                cell(separate[separate[f"test/{t}/acc"].notna()].iloc[0], f"test/{t}/acc") for t in found.tasks
            ],
            "Δ": [number(a - b, "signed") for a, b in zip(found.shared_acc, found.separate_acc)],
        }
    ).to_markdown(index=False, disable_numparse=True)
    costs = pd.DataFrame(
        {
            "cost": [name for name, _ in COSTS.values()],
            "multitask (one network)": [number(shared[key], kind) for key, (_, kind) in COSTS.items()],
            f"separate ({len(separate)} models, summed)": [
                number(separate[key].sum(), kind) for key, (_, kind) in COSTS.items()
            ],
            "ratio": [number(found.ratios.get(name, math.nan), "") for name, _ in COSTS.values()],
        }
    ).to_markdown(index=False, disable_numparse=True)
    gains = ", ".join(f"{t} {a - b:+.3f}" for t, a, b in zip(found.tasks, found.shared_acc, found.separate_acc))
    return Section(
        TITLE,
        "One network with a shared body and a branch per task, against one separate model per task, same data and "
        "trainer budget. Accuracy per task on the full test split; costs of the one network against the separate "
        "models "
        "together.",
        per_task,
        f"{TITLE}: accuracy Δ per task {gains}; parameters ×{found.ratios.get('total params', math.nan):.2f}.",
        extra=costs,
        metrics={
            f"multitask/{t}/acc_vs_separate": a - b
            for t, a, b in zip(found.tasks, found.shared_acc, found.separate_acc)
        },
        charts=[_chart(found)],
    )


def _chart(found: MultitaskComparison | None) -> Chart:
    """Per task, the multi-task model's test accuracy next to its separate model's; and the cost ratios."""
    if found is None:
        return Chart("multitask_vs_separate", "multitask.csv", pd.DataFrame(columns=["label", "test/acc"]), None)
    bars = pd.DataFrame(
        [
            {"label": f"{task}: {model}", "test/acc": acc}
            for task, shared, alone in zip(found.tasks, found.shared_acc, found.separate_acc)
            for model, acc in (("multitask", shared), ("separate", alone))
        ]
    )
    figure = figures.multitask_comparison_figure(found.tasks, found.shared_acc, found.separate_acc, found.ratios)
    return Chart("multitask_vs_separate", "multitask.csv", bars, figure)
