"""The ``multitask`` stage: one network with a shared body and a branch per task, against one
separate single-task model per task, trained on the same data with the same budget.

The claim under test: sharing the body generalises as well or better than separate models,
with fewer parameters, less memory and less compute. The stage makes one MLflow run per
separate model (``paradigm=single_task``, variant ``single_task/<task>``) and then the
multi-task run (``paradigm=multitask``), which also carries the comparison with the separate
models together: ``compare/*_ratio_vs_separate`` (multi-task / sum of the separate ones) and
``compare/<task>/acc_delta_vs_separate`` (multi-task minus separate).

Data: ``full.npz`` (all classes); each task's labels come from its definition in
``multitask.tasks``, or from the data when it names none (:mod:`pipeline.paradigms.multitask.task_labels`).
A task that splits the examples as an earlier one does is left out with a warning; where fewer than two
tasks remain (parity on two classes is the class), the stage has nothing to compare
(:class:`NothingToCompare`) and says so in its outputs instead of training.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import mlflow
import numpy as np
import torch

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import TaskData, load_task
from pipeline.errors import UserError
from pipeline.io import atomic_dir
from pipeline.models.checkpoint import save_multitask
from pipeline.models.loss_weighting import build_weighting
from pipeline.models.multitask import Branch, build_multitask_net
from pipeline.models.reuse import load_base_for
from pipeline.paradigms.fitted import fit_tracked
from pipeline.paradigms.multitask import PARADIGM
from pipeline.paradigms.multitask.config import TaskSpec
from pipeline.paradigms.multitask.task_labels import TaskLabels, default_tasks, derive_task_labels, distinct_tasks
from pipeline.paths import StagePaths
from pipeline.seeding import seed_everything
from pipeline.tracking import figures
from pipeline.tracking.contract import Metrics, RunSpec, SavedModel, Trained
from pipeline.tracking.outputs import write_csv
from pipeline.training.multitask_module import MultiTaskModule
from pipeline.training.runner import make_loaders

SHARED = "multitask"
COSTS = {  # what the multi-task model is compared on, summed over the separate models
    "params/total": "params_ratio_vs_separate",
    "memory/estimated_train_bytes": "estimated_memory_ratio_vs_separate",
    "memory/peak_bytes": "peak_memory_ratio_vs_separate",
    "time/fit_seconds": "fit_time_ratio_vs_separate",
}


PLOT_COLUMNS = {  # the CSVs behind dvc plots, by their columns: headers alone when there is nothing to compare
    "history.csv": ["variant", "epoch", "val/acc"],
    "loss_weights.csv": ["epoch", "task", "loss_weight"],
    "tasks.csv": ["model", "task", "approach", "test/acc", "test/f1_macro"],
    "cost.csv": ["approach", *COSTS],
}
NOTHING_FILE = "NOTHING_TO_COMPARE.txt"


class NothingToCompare(UserError):
    """Fewer than two distinct tasks on this data: no multi-task network to compare with separate models (the stage
    says so in its outputs; a sweep of it stops with this line)."""


def separate_variant(task: str) -> str:
    return f"single_task/{task}"


def tasks_to_compare(params: SharedParams, data: TaskData, where: str) -> tuple[list[TaskSpec], list[TaskLabels]]:
    """The tasks and their labels, less those that repeat another's split (each said in a warning line); raises
    :class:`NothingToCompare` when fewer than two remain."""
    asked = params.multitask.tasks or default_tasks(data, params.data.label_column)
    labels = [derive_task_labels(data, spec, where) for spec in asked]
    specs, labels, notes = distinct_tasks(asked, labels, where)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if len(specs) < 2:
        tasks = ", ".join(spec.name for spec in asked)
        named = f"multitask.tasks ({tasks})" if params.multitask.tasks else f"the default tasks ({tasks})"
        raise NothingToCompare(
            f"multitask: {named} give one distinct task on {where} ('{specs[0].name}', {labels[0].num_classes} "
            "classes), so there is no multi-task network to compare; name a second task in multitask.tasks, e.g. a "
            "label column listed in data.task_columns"
        )
    return specs, labels


def write_nothing_to_compare(reason: str, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> None:
    """The stage's outputs when it has nothing to compare, beside its metrics file: the reason in its models folder,
    its plots' headers; no run."""
    print(f"warning: {reason}", file=sys.stderr)
    with atomic_dir(paths.models) as out:
        (out / NOTHING_FILE).write_text(reason + "\n")
    for name, columns in PLOT_COLUMNS.items():
        write_csv(Path(paths.plots) / name, [], columns)


def run_multitask(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    """The separate models, then the multi-task one; the models folder appears once all are saved."""
    where = paths.prepared(PARADIGM.task)
    data = load_task(where)
    specs, labels = tasks_to_compare(params, data, str(where))
    start = load_base_for(data, paths.base, params.model).body.state_dict() if params.multitask.init_from_base else None
    runs, trained = {}, {}
    with atomic_dir(paths.models) as out:
        for spec, task in zip(specs, labels):
            variant = separate_variant(spec.name)
            separate = PARADIGM.run_spec(variant, paradigm="single_task")
            runs[variant], trained[variant] = _train(params, data, [spec], [task], "fixed", separate, start, out)
        separate = [runs[separate_variant(spec.name)] for spec in specs]
        runs[SHARED], trained[SHARED] = _train(
            params,
            data,
            specs,
            labels,
            params.multitask.weighting,
            PARADIGM.run_spec(SHARED),
            start,
            out,
            derived=lambda metrics: compare_with_separate(metrics, separate, [s.name for s in specs]),
        )
    _log_comparison_figure(runs, specs)
    write_multitask_plots(paths.plots, runs, trained, [s.name for s in specs])
    return runs


def _train(
    params: SharedParams,
    data: TaskData,
    specs: list[TaskSpec],
    labels: list[TaskLabels],
    weighting: str,
    spec: RunSpec,
    body_state: Optional[dict[str, torch.Tensor]],
    out: Path,
    derived: Optional[Callable[[Metrics], Metrics]] = None,
) -> tuple[dict, Trained]:
    """One network with a branch per task in ``specs`` (one branch: a separate single-task model).

    ``body_state``: the base's body weights to start from (``multitask.init_from_base``), or None for random.
    """
    cfg = params.trainer_for(PARADIGM.stage)
    branches = [Branch(task.name, tuple(task.tower), labelled.num_classes) for task, labelled in zip(specs, labels)]
    seed_everything(params.seed)
    net = build_multitask_net(params.model, data.input_shape, branches)
    if body_state is not None:
        net.body.load_state_dict(body_state)
    weights = [task.weight for task in specs] if len(specs) > 1 else [1.0]
    module = MultiTaskModule(net, branches, build_weighting(weighting, weights), weights, cfg)
    targets = {split: np.stack([task.y[split] for task in labels], axis=1) for split in data.y}
    classes = {task.name: task.classes for task in labels}
    saved = SavedModel(
        out / f"{spec.variant.replace('/', '-')}.pt",
        lambda path: save_multitask(path, net, params.model, data.input_shape, branches, classes),
        lambda: net,
    )
    tags = {
        "tasks": ",".join(task.name for task in specs),
        "weighting": weighting,
        "init": "pretrained base" if body_state is not None else "random",
    }
    loaders = make_loaders(data.X, targets, cfg, params.seed)
    return fit_tracked(params, spec, module, loaders, data, classes, saved, tags=tags, derived=derived)


def compare_with_separate(shared: Metrics, separate: list[dict], tasks: list[str]) -> Metrics:
    """The multi-task model's costs over the separate models' summed costs (each fit's own measured peak
    included, :class:`~pipeline.memory.PeakMemory`), and its accuracy gain per task."""
    out: Metrics = {}
    for key, ratio in COSTS.items():
        total = sum(run[key] for run in separate)
        out[f"separate/{key}"] = total
        if total > 0:
            out[f"compare/{ratio}"] = shared[key] / total
    for task, run in zip(tasks, separate):
        for metric in ("acc", "f1_macro"):
            out[f"compare/{task}/{metric}_delta_vs_separate"] = (
                shared[f"test/{task}/{metric}"] - run[f"test/{task}/{metric}"]
            )
    return out


def write_multitask_plots(
    plots_dir: Path, runs: dict[str, dict], trained: dict[str, Trained], tasks: list[str]
) -> None:
    """The CSVs behind ``dvc plots``: learning curves, loss weights, per-task accuracy, costs."""
    plots_dir = Path(plots_dir)
    write_csv(plots_dir / "history.csv", [{"variant": v, **row} for v, done in trained.items() for row in done.history])
    write_csv(
        plots_dir / "loss_weights.csv",
        [
            {"epoch": row["epoch"], "task": t, "loss_weight": row[f"loss_weight/{t}"]}
            for row in trained[SHARED].history
            for t in tasks
        ],
    )
    accuracy = []
    for task in tasks:
        for approach, run in (("multitask", runs[SHARED]), ("single-task", runs[separate_variant(task)])):
            scores = {m: run[f"test/{task}/{m}"] for m in ("acc", "f1_macro")}
            accuracy.append(
                {
                    "model": f"{task} · {approach}",
                    "task": task,
                    "approach": approach,
                    **{f"test/{m}": v for m, v in scores.items()},
                }
            )
    write_csv(plots_dir / "tasks.csv", accuracy)
    shared = runs[SHARED]
    write_csv(
        plots_dir / "cost.csv",
        [
            {"approach": "multitask", **{k: shared[k] for k in COSTS}},
            {"approach": f"separate ({len(tasks)} models)", **{k: shared[f"separate/{k}"] for k in COSTS}},
        ],
    )


def _log_comparison_figure(runs: dict[str, dict], specs: list[TaskSpec]) -> None:
    """Per-task test accuracy and the cost ratios, as one figure on the multi-task run."""
    tasks = [spec.name for spec in specs]
    shared = runs[SHARED]
    fig = figures.multitask_comparison_figure(
        tasks,
        shared_acc=[shared[f"test/{t}/acc"] for t in tasks],
        separate_acc=[runs[separate_variant(t)][f"test/{t}/acc"] for t in tasks],
        ratios={key: shared[f"compare/{ratio}"] for key, ratio in COSTS.items() if f"compare/{ratio}" in shared},
    )
    mlflow.MlflowClient().log_figure(shared["run_id"], fig, "plots/multitask_vs_separate.png")
    figures.close(fig)
