"""What ``prepare`` shows in MLflow: split sizes, class counts, each task's trivial baselines and warnings,
sample inputs, client label mixes. Here, not in :mod:`pipeline.data`: the data layer knows nothing of MLflow."""

from __future__ import annotations

import sys

import mlflow

from pipeline.data.prepare import PreparedData
from pipeline.data.splits import client_class_counts
from pipeline.tracking import figures
from pipeline.tracking.runs import RunSpec

SPEC = RunSpec("prepare", "data", "splits", ("seed", "data", "prepare"))  # its run; the params it reads, as in dvc.yaml
# What metrics/prepare.json shows DVC, from the metrics the run logs: what a change of data or split moves first.
# Short keys: each is a column of `dvc metrics show`, beside every variant's rows.
HEADLINE = {
    "examples": "data/examples",
    "classes": "data/classes",
    "labels": "data/target_train",  # the labelled target examples the target paradigms train on
    "logistic": "baseline/target/logistic",  # the target test accuracy a logistic regression reaches
}


def log_prepared(prepared: PreparedData) -> dict[str, float]:
    """Log the summary, metrics and figures to the active run; return the headline metrics."""
    summary = prepared.summary()
    metrics: dict[str, float] = {"data/examples": summary["examples"], "data/classes": summary["classes"]}
    for task in ("source", "target", "full"):
        metrics |= {f"data/{task}_{split}": n for split, n in summary[task]["sizes"].items()}
        metrics |= {f"baseline/{task}/{name}": value for name, value in summary[task]["baselines"].items()}
        for note in summary[task]["notes"]:
            print(f"warning: prepare, {task} task: {note}", file=sys.stderr)
            mlflow.set_tag(f"sanity/{task}", note)
    for scheme, stats in summary["federated"].items():
        metrics[f"data/federated_{scheme}_label_skew"] = stats["label_skew"]
    metrics["data/al_labelled"] = summary["active_learning"]["labelled"]
    metrics["data/al_pool"] = summary["active_learning"]["pool"]
    mlflow.log_metrics(metrics)
    mlflow.log_dict(summary, "data/summary.json")

    full = prepared.full
    shown = [
        ("data/samples_full.png", figures.sample_grid(full.X["train"], full.y["train"], full.classes)),
        (
            "data/samples_target.png",
            figures.sample_grid(prepared.target.X["train"], prepared.target.y["train"], prepared.target.classes),
        ),
    ]
    for scheme, clients in prepared.partitions.items():
        title = f"{scheme} partition, label skew {summary['federated'][scheme]['label_skew']:.2f}"
        counts = client_class_counts(clients, full.y["train"], len(full.classes))
        shown.append((f"data/clients_{scheme}.png", figures.client_label_figure(counts, full.classes, title)))
    for name, fig in shown:
        mlflow.log_figure(fig, name)
        figures.close(fig)
    return metrics


def headline(metrics: dict[str, float], run_id: str) -> dict:
    """metrics/prepare.json: a few of the run's ``metrics``, and the run (a list, which DVC's tables leave out);
    every other number stays in the run."""
    return {key: _shown(metrics[name]) for key, name in HEADLINE.items()} | {"run_ids": [run_id]}


def _shown(value: float) -> float | int:
    """A count as an integer, an accuracy to 4 decimals."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 4)
