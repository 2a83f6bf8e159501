"""The report's section on multi-task learning: accuracy per task and the costs of one shared network
against the separate single-task models together, with its chart."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from pipeline.reporting.charts import Chart
from pipeline.reporting.headline import chosen, headline_seeds
from pipeline.reporting.results import Results
from pipeline.reporting.sections import EARLY, Section, epochs, flag_sanity
from pipeline.reporting.significance import Verdict, compare
from pipeline.reporting.table import cell, number
from pipeline.tracking import figures

TITLE = "Multi-task vs separate models"
QUESTION = "multitask"
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
        why = results.skipped.get("multitask")
        text = f"No multi-task comparison: {why}." if why else "No multi-task run with its separate models."
        return Section(TITLE, text, "", charts=[_chart(None)])
    shared = table[(table.stage == "multitask") & (table.paradigm == "multitask")].iloc[0]
    separate = table[(table.stage == "multitask") & (table.paradigm != "multitask")]
    alone = {t: separate[separate[f"test/{t}/acc"].notna()].iloc[0] for t in found.tasks}
    verdicts = {
        t: compare(
            results.scores(shared, f"test/{t}/acc", output=t), results.scores(alone[t], f"test/{t}/acc", output=t)
        )
        for t in found.tasks
    }
    trained = {t: epochs(results, pd.DataFrame([shared, alone[t]])) for t in found.tasks}
    per_task = pd.DataFrame(
        {
            "task": found.tasks,
            "multitask acc": [cell(shared, f"test/{t}/acc") for t in found.tasks],
            "separate model acc": [cell(alone[t], f"test/{t}/acc") for t in found.tasks],
            "Δ": [number(a - b, "signed") for a, b in zip(found.shared_acc, found.separate_acc)],
            "beyond noise?": [_judged(verdicts[t]) for t in found.tasks],
            "epochs: multitask": [trained[t](shared) for t in found.tasks],
            "epochs: separate": [trained[t](alone[t]) for t in found.tasks],
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
    gains = ", ".join(
        f"{t} {a - b:+.3f} ({_judged(verdicts[t])})"
        for t, a, b in zip(found.tasks, found.shared_acc, found.separate_acc)
    )
    rows = pd.DataFrame([shared, *alone.values()])
    headline = (
        f"{TITLE} ({headline_seeds(rows)}): accuracy Δ per task {gains}; "
        f"parameters ×{found.ratios.get('total params', math.nan):.2f}"
    )
    unequal = _unequal_epochs(shared, alone)
    if unequal:
        headline += f"; not like for like: {unequal}"
    section = Section(
        TITLE,
        "One network with a shared body and a branch per task, against one separate model per task, same data and "
        "trainer budget. Accuracy per task on the full test split; `beyond noise?`: whether the difference is beyond "
        "what the test split's size and the seeds allow (docs/comparison.md); `epochs`: trained of the cap, marked "
        "where a model stopped at the cap or under ⅔ of the epochs of its partner. Costs of the one network against "
        "the separate models together.",
        per_task,
        headline + ".",
        extra=costs,
        metrics={
            f"multitask/{t}/acc_vs_separate": a - b
            for t, a, b in zip(found.tasks, found.shared_acc, found.separate_acc)
        },
        charts=[_chart(found)],
        champion=chosen(
            results,
            pd.DataFrame([shared]),
            shared["label"],
            QUESTION,
            "Multi-task: the shared network",
            gains,
            "the one network the question is about (the separate models are its control)",
        ),
    )
    return flag_sanity(section, rows)


def _judged(verdict: Verdict) -> str:
    if verdict.a_wins:
        return f"multitask better, {verdict.detail()}"
    if verdict.b_wins:
        return f"separate better, {verdict.detail()}"
    return f"within noise, {verdict.detail()}"


def _unequal_epochs(shared: pd.Series, alone: dict[str, pd.Series]) -> str:
    """Where the shared network and a separate model trained for very different numbers of epochs (one under
    ⅔ of the other's), in words; "" when none did."""
    found = []
    for task, row in alone.items():
        ours, theirs = shared.get("train/epochs", math.nan), row.get("train/epochs", math.nan)
        if not (math.isnan(ours) or math.isnan(theirs)) and min(ours, theirs) < EARLY * max(ours, theirs):
            found.append(f"multitask trained {ours:.0f} epochs, separate {task} {theirs:.0f}")
    return "; ".join(found)


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
