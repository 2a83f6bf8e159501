"""The ``active_learning`` stage: how many labels does each query strategy need, compared with labelling at random?

Every strategy starts from the same seed set (``active_learning.npz``) and the same initial
weights, and makes its own MLflow run (``paradigm=active_learning``, variant = the strategy,
``<strategy>+pseudo`` when ``cooperative``). ``random`` always runs first: it is the control.
Per round, with ``step`` = labels used: ``test/acc``, ``test/f1_macro``, ``val/*``,
``al/pool_uncertainty`` (mean predictive entropy of the scored pool), ``al/query_uncertainty``
and, co-operatively, ``al/pseudo_labels`` and ``al/pseudo_label_acc``. Per run: ``al/alc``
(normalised area under the learning curve), ``al/labels_to_target`` (fewest labels reaching
the target accuracy, by default random's final one) and the tracking contract.

The oracle is the training split's true labels; ``python -m pipeline.paradigms.active_learning.annotate``
puts a person in its place.
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
from pipeline.io import atomic_dir
from pipeline.memory import PeakMemory
from pipeline.models.reuse import classifier_with, starting_classifier
from pipeline.paradigms.active_learning import PARADIGM
from pipeline.paradigms.active_learning.config import CONTROL
from pipeline.paradigms.active_learning.curves import area_under_curve, labels_to_reach
from pipeline.paradigms.active_learning.labels import LabelState, load_seed_state
from pipeline.paradigms.active_learning.learner import Learner
from pipeline.paradigms.active_learning.rounds import Row, Simulation, simulate
from pipeline.paths import StagePaths
from pipeline.seeding import seed_everything
from pipeline.tracking import figures
from pipeline.tracking.contract import SavedModel, tracked_run
from pipeline.tracking.outputs import write_csv
from pipeline.training.lightning_module import OUTPUT

SCORES = ("test", "val", "train")  # the last round's scores are the run's


def run_active_learning(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    """Every strategy from the same seed set and start; the models folder appears once all are saved."""
    cfg = params.active_learning
    data = load_task(paths.prepared(PARADIGM.task))
    seed_state = load_seed_state(paths.prepared("active_learning"), data.y["train"])
    start = starting_classifier(params.model, data, paths.base, cfg.init_from_base, params.seed).state_dict()
    runs: dict[str, dict] = {}
    histories: dict[str, list[Row]] = {}
    control: Optional[dict] = None
    with atomic_dir(paths.models) as out:
        for strategy in cfg.strategies:  # random first (the schema puts it there)
            variant = cfg.variant(strategy)
            runs[variant], histories[variant] = run_strategy(params, data, seed_state, strategy, start, out, control)
            control = control or runs[variant]
    control_variant = cfg.variant(CONTROL)
    _log_curves_to_every_run(runs, histories, control_variant, runs[control_variant]["al/target_accuracy"])
    write_active_learning_plots(paths.plots, runs, histories)
    return runs


def run_strategy(
    params: SharedParams,
    data: TaskData,
    seed_state: LabelState,
    strategy: str,
    start: dict[str, torch.Tensor],
    out: Path,
    control: Optional[dict] = None,
) -> tuple[dict, list[Row]]:
    """One strategy's rounds in its own run; ``control`` is random's run entry (None for random itself)."""
    cfg, trainer_cfg = params.active_learning, params.trainer_for(PARADIGM.stage)
    spec = PARADIGM.run_spec(cfg.variant(strategy))
    seed_everything(params.seed)
    model = classifier_with(params.model, data, start)
    learner = Learner(model, data.num_classes, trainer_cfg, cfg.train_steps, cfg.warm_start)
    tags = {
        "strategy": strategy,
        "cooperative": str(cfg.cooperative).lower(),
        "warm_start": str(cfg.warm_start).lower(),
        "init": "pretrained base" if cfg.init_from_base else "random",
    }
    with tracked_run(params, spec, tags) as run:
        with PeakMemory(learner.device, learner.model) as peak:
            sim = simulate(
                learner,
                data,
                seed_state,
                strategy,
                cfg,
                params.seed,
                RoundProgress(spec.label, cfg.rounds, run.log_step),
            )
        last = sim.rows[-1]
        labels, acc = [int(r["labels"]) for r in sim.rows], [r["test/acc"] for r in sim.rows]
        metrics = _curve_metrics(labels, acc, cfg.target_accuracy, control) | _pseudo_metrics(sim.rows)
        metrics |= {k: v for k, v in last.items() if k.split("/")[0] in SCORES}
        test_logits = learner.predict(torch.from_numpy(data.X["test"]))
        _log_queries(sim, seed_state, data)
        trained = learner.trained(
            peak_bytes=peak.peak_bytes,
            labels_used=labels[-1],  # no validation labels: every round trains fixed steps
            fit_seconds=sim.train_seconds,
            samples_per_s=sim.samples_trained / sim.train_seconds if sim.train_seconds else 0.0,
            metrics=metrics,
            predictions={OUTPUT: (data.y["test"], test_logits.argmax(dim=1).numpy())},
            history=sim.rows,
            logged=frozenset(last),
            step=labels[-1],  # the scores: logged per round
        )
        saved = SavedModel.classifier(out / f"{spec.variant}.pt", model, params.model, data)
        return run.finish(trained, data, {OUTPUT: data.classes}, saved), sim.rows


class RoundProgress:
    """Each round: its scores logged with ``step`` = labels used, and one line on the terminal."""

    def __init__(self, label: str, rounds: int, log_step: Callable[[dict[str, float], int], None]):
        self.label, self.rounds, self.log_step = label, rounds, log_step

    def __call__(self, row: Row) -> None:
        scores = {("al/round" if k == "round" else k): float(v) for k, v in row.items() if k != "labels"}
        self.log_step(scores, int(row["labels"]))
        pseudo = ""
        if row.get("al/pseudo_labels"):
            right = row.get("al/pseudo_label_acc", float("nan"))
            pseudo = f"  +{int(row['al/pseudo_labels'])} pseudo-labels ({right:.1%} right)"
        uncertainty = f"  pool uncertainty {row['al/pool_uncertainty']:.3f}" if "al/pool_uncertainty" in row else ""
        print(
            f"[{self.label}] round {int(row['round'])}/{self.rounds}  labels {int(row['labels'])}  "
            f"test/acc {row['test/acc']:.4f}  test/f1_macro {row['test/f1_macro']:.4f}{uncertainty}{pseudo}",
            file=sys.stderr,
            flush=True,
        )


def _curve_metrics(
    labels: list[int], acc: list[float], target: Optional[float], control: Optional[dict]
) -> dict[str, float]:
    """``al/alc``; the fewest labels reaching the target (random's final accuracy unless set), and their share of
    all the labels random used: below 1, the strategy matched random's result with fewer labels."""
    if target is None:
        target = acc[-1] if control is None else control["al/target_accuracy"]
    reached = labels_to_reach(labels, acc, target)
    metrics = {
        "al/alc": area_under_curve(labels, acc),
        "al/labels_final": labels[-1],
        "al/target_accuracy": target,
        "al/reached_target": float(reached is not None),
    }
    if reached is not None:
        metrics["al/labels_to_target"] = reached
        if control is not None:
            # of the labels random used in all
            metrics["al/label_share_vs_random"] = reached / control["al/labels_final"]
    if control is not None:
        metrics["al/alc_gain_vs_random"] = metrics["al/alc"] - control["al/alc"]
    return metrics


def _pseudo_metrics(rows: list[Row]) -> dict[str, float]:
    counts = np.array([r.get("al/pseudo_labels", 0) for r in rows], dtype=float)
    right = sum(r["al/pseudo_labels"] * r["al/pseudo_label_acc"] for r in rows if "al/pseudo_label_acc" in r)
    return {"al/pseudo_labels_total": float(counts.sum())} | (
        {"al/pseudo_label_acc_mean": right / counts.sum()} if counts.sum() else {}
    )


def _log_queries(sim: Simulation, seed_state: LabelState, data: TaskData) -> None:
    """``queries.json``: the seed set (round 0) and each round's query, as dataset row ids with their labels."""
    rounds = [np.zeros(len(seed_state), dtype=int)] + [
        np.full(len(q), i, dtype=int) for i, q in enumerate(sim.queries, start=1)
    ]
    order = np.concatenate(rounds)
    mlflow.log_table(
        {
            "round": order.tolist(),
            "id": data.ids["train"][sim.state.ids].tolist(),
            "label": data.classes[sim.state.labels].tolist(),
        },
        "queries.json",
    )


def _log_curves_to_every_run(
    runs: dict[str, dict], histories: dict[str, list[Row]], control: str, target: float
) -> None:
    """One chart with every strategy's learning curve, in each strategy's run (``plots/learning_curves.png``)."""
    curves = {v: ([int(r["labels"]) for r in rows], [r["test/acc"] for r in rows]) for v, rows in histories.items()}
    fig = figures.curves_figure(
        curves, "labels used", "active learning: test accuracy vs labels", control, ("target", target)
    )
    client = mlflow.MlflowClient()
    for entry in runs.values():
        client.log_figure(entry["run_id"], fig, "plots/learning_curves.png")
    figures.close(fig)


def write_active_learning_plots(plots_dir: Path, runs: dict[str, dict], histories: dict[str, list[Row]]) -> None:
    """The CSVs behind ``dvc plots``: every strategy's rounds (learning curve, pool uncertainty, pseudo-labels), and
    each run's summary."""
    plots_dir = Path(plots_dir)
    columns = [
        "variant",
        "labels",
        "round",
        "test/acc",
        "test/f1_macro",
        "al/pool_uncertainty",
        "al/query_uncertainty",
        "al/pseudo_labels",
        "al/pseudo_label_acc",
    ]
    rows = [
        {"variant": v, **{k: row.get(k) for k in columns[1:]}} for v, history in histories.items() for row in history
    ]
    write_csv(plots_dir / "curves.csv", rows, columns=columns)
    keys = ("al/alc", "al/labels_to_target", "al/label_share_vs_random", "test/acc", "test/f1_macro", "al/labels_final")
    write_csv(
        plots_dir / "strategies.csv", [{"variant": v, **{k: run.get(k) for k in keys}} for v, run in runs.items()]
    )
