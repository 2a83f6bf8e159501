"""The report's deployment-cost section: what each saved model costs to serve, against its accuracy.

Every training run logs its saved model's size on disk, its non-zero weights and its inference latency and
throughput (:mod:`pipeline.deployment.inference`). The section shows them per variant and marks the runs on the
Pareto front of accuracy against size and against latency. Fronts are per task: runs on different tasks are tested
on different examples, so their accuracies do not compare.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import pandas as pd

from pipeline.deployment.cost import NONZERO_METRIC, SIZE_METRIC
from pipeline.deployment.inference import LATENCY_P50, LATENCY_P95, THROUGHPUT
from pipeline.reporting.charts import deployment_chart
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, col, linked, seeds
from pipeline.reporting.table import Column, cell, markdown_table, number

TITLE = "Deployment cost: accuracy against size and latency"
NEAR_BEST = 0.01  # "within 1 point" of a task's best test accuracy: a fixed margin, not a significance test
FRONTS = {"on_size_front": SIZE_METRIC, "on_latency_front": LATENCY_P50}  # column -> the cost it is the front of


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[bool]:
    """Per point, whether it is on the front of high score at low cost: no other point has a score >= and a cost <=
    with one of the two strictly better. Equal points are all on it; a point missing either (NaN) is on no front
    and pushes none off."""
    points = [(float(c), float(s)) for c, s in zip(costs, scores)]
    missing = [math.isnan(c) or math.isnan(s) for c, s in points]
    known = [p for p, gone in zip(points, missing) if not gone]

    def beaten(cost: float, score: float) -> bool:
        return any(s >= score and c <= cost and (c, s) != (cost, score) for c, s in known)

    return [not gone and not beaten(*p) for p, gone in zip(points, missing)]


def with_fronts(table: pd.DataFrame) -> pd.DataFrame:
    """``table``'s rows ordered by task then size, with ``on_size_front`` and ``on_latency_front``: each row's place
    on its own task's fronts (a row that logged no such cost is on neither)."""
    rows = table.copy()
    for front, cost in FRONTS.items():
        rows[front] = False
        for _, same in rows.groupby("task", sort=False, dropna=False):
            rows.loc[same.index, front] = pareto_front(list(same[cost]), list(same["test/acc"]))
    order = {task: i for i, task in enumerate(dict.fromkeys(rows["task"]))}
    return rows.sort_values([SIZE_METRIC], kind="stable").sort_values("task", key=lambda t: t.map(order), kind="stable")


def smallest_near_best(rows: pd.DataFrame) -> Optional[pd.Series]:
    """Of one task's rows, the smallest within :data:`NEAR_BEST` of its best accuracy (the more accurate on a tie):
    nothing as small is as accurate, so it is on the size front. None when no row has both numbers."""
    known = rows.dropna(subset=["test/acc", SIZE_METRIC])
    near = known[known["test/acc"] >= known["test/acc"].max() - NEAR_BEST]
    return near.sort_values([SIZE_METRIC, "test/acc"], ascending=[True, False]).iloc[0] if len(near) else None


def on_front(front: str) -> Column:
    return lambda row: "–" if math.isnan(row[FRONTS[front]]) else ("yes" if row[front] else "no")


COLUMNS: dict[str, Column] = {
    "run": lambda row: row["label"],
    "task": lambda row: row["task"],
    "seeds": seeds,
    "test acc": col("test/acc"),
    "size on disk": col(SIZE_METRIC, "bytes"),
    "non-zero weights": col(NONZERO_METRIC, "int"),
    "latency p50 (ms)": col(LATENCY_P50, "ms"),
    "latency p95 (ms)": col(LATENCY_P95, "ms"),
    "throughput (samples/s)": col(THROUGHPUT, "int"),
    "size front": on_front("on_size_front"),
    "latency front": on_front("on_latency_front"),
    "MLflow": linked,
}


def deployment_cost(results: Results) -> Section:
    rows = with_fronts(results.table)
    if rows[SIZE_METRIC].isna().all():
        return Section(TITLE, "No run logged what its saved model costs to deploy.", "")
    text = (
        "What each saved model costs to serve, in the form it is saved (pruned, int8, fp16, adapters ...): `size on "
        "disk` of the saved file, its `non-zero weights`, and inference timed one way for every run "
        "(`pipeline/deployment/inference.py`): on the run's own device (an int8 model on the CPU, where its kernels "
        "are), in eval mode, `latency` is batch 1, the median "
        "(p50) and 95th percentile of `deployment.timed_calls` timed calls after `deployment.warmup_calls` untimed "
        "ones; `throughput` is samples per second at `deployment.throughput_batch` examples per call. "
        "`size front` and `latency front`: the run is on the Pareto front of test accuracy against that cost, that "
        "is no other run has as high an accuracy at as low a cost with one of the two strictly better. Fronts are "
        "per task: runs on different tasks are tested on different examples, so only same-task runs compare. "
        "Latency on a shared CPU is noisy (other processes, frequency scaling, thread scheduling): a difference of a "
        "few percent means nothing, and the front by latency can change from one run to the next; latencies timed on "
        "different devices do not compare at all. The headline names, per task, the smallest run within 1 point of "
        "the task's best mean accuracy: a fixed margin, not a significance test."
    )
    found, metrics = [], {}
    for task, same in rows.groupby("task", sort=False):
        name = task or "untasked"
        metrics[f"deploy/{name}/front_size_runs"] = int(same["on_size_front"].sum())
        metrics[f"deploy/{name}/front_latency_runs"] = int(same["on_latency_front"].sum())
        best, small = same["test/acc"].max(), smallest_near_best(same)
        if small is None:
            continue
        metrics[f"deploy/{name}/smallest_near_best_size_bytes"] = float(small[SIZE_METRIC])
        metrics[f"deploy/{name}/smallest_near_best_acc"] = float(small["test/acc"])
        found.append(
            f"{name}: {small['label']} at {number(small[SIZE_METRIC], 'bytes')}, acc {cell(small, 'test/acc')} "
            f"(best {number(best)}), p50 {number(small[LATENCY_P50], 'ms')} ms"
        )
    headline = f"{TITLE.split(':')[0]}: smallest run within 1 point of its task's best accuracy: " + "; ".join(found)
    return Section(
        TITLE,
        text,
        markdown_table((row for _, row in rows.iterrows()), COLUMNS),
        headline + ".",
        metrics=metrics,
        charts=[deployment_chart(rows)],
    )
