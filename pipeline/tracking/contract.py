"""The run contract: what every training run logs, whatever trained it.

A paradigm opens its run with :func:`tracked_run`, trains (a Lightning fit, federated rounds or
active-learning rounds, logging its own scores per epoch or round as it goes) and hands what it
trained to :meth:`TrackedRun.finish`. That one method logs the contract: the memory estimate from the
parameter count, the measured model state and peak, the labels used, fit time and throughput, the
device, precision and optimizer; a confusion matrix per output; every test example's true and
predicted class (:data:`PREDICTIONS_ARTIFACT`, so the comparison can test two runs on the same
examples); the saved model (the project's own checkpoint, for the pipeline's loaders), its size and
the checkpoint as an artifact; what the saved model costs to deploy (its size on disk, its non-zero
weights, its inference latency and throughput, timed by :mod:`pipeline.deployment.inference`); the
trained network as an MLflow Model that loads and serves without
this project (:mod:`.mlflow_model`); and the prepared splits it trained and tested on as MLflow
datasets (:mod:`.datasets`). It then checks the run holds every :data:`CONTRACT_METRICS` and
:data:`CONTRACT_TAGS` key, so a paradigm that leaves one out fails at once. A new required metric is
one edit, here.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import mlflow
import numpy as np
import torch
from torch import nn

from pipeline.config.schema import DeploymentConfig, ModelConfig, SharedParams
from pipeline.data.prepared import TaskData
from pipeline.deployment.cost import NONZERO_METRIC, SIZE_METRIC
from pipeline.deployment.inference import LATENCY_P50, LATENCY_P95, THROUGHPUT, measure_inference
from pipeline.deployment.weights import count_nonzero_weights, count_weights
from pipeline.memory import estimate_training_memory
from pipeline.memory.activations import ESTIMATED as ACTIVATIONS_ESTIMATED
from pipeline.memory.activations import MEASURED as ACTIVATIONS_MEASURED
from pipeline.models.checkpoint import save_classifier
from pipeline.ranks import is_global_zero
from pipeline.tracking import figures
from pipeline.tracking.datasets import log_datasets
from pipeline.tracking.mlflow_model import AGREEMENT_METRIC, MODEL_LOGGING_METRIC, log_mlflow_model
from pipeline.tracking.runs import PREDICTIONS_ARTIFACT, RunSpec, stage_run
from pipeline.tracking.step_metrics import StepMetrics

__all__ = ["CONTRACT_METRICS", "CONTRACT_TAGS", "RunSpec", "SavedModel", "Trained", "TrackedRun", "tracked_run"]

Metrics = dict[str, float]
Predictions = dict[str, tuple[np.ndarray, np.ndarray]]  # per output: true and predicted class of each test example

CONTRACT_METRICS = (
    "test/acc", "test/f1_macro", "test/loss", "train/loss", "val/acc", "val/loss",
    "params/total", "params/trainable", "memory/estimated_train_bytes", "memory/weights_bytes",
    "memory/grads_bytes", "memory/optimizer_bytes", "memory/autocast_copies_bytes", "memory/rule_12n_bytes",
    "memory/peak_bytes", "memory/measured_state_bytes", "time/fit_seconds", "throughput/train_samples_per_s",
    "data/labels_used", SIZE_METRIC, NONZERO_METRIC, LATENCY_P50, LATENCY_P95, THROUGHPUT,
    ACTIVATIONS_ESTIMATED, ACTIVATIONS_MEASURED,
)  # fmt: skip
# What a model that nothing trained (compressed after training) has no value for: it holds no gradient or
# optimizer state, and its weights may live outside parameters (int8), so no estimate from them is made.
TRAINING_ONLY = frozenset({
    "memory/estimated_train_bytes", "memory/weights_bytes", "memory/grads_bytes", "memory/optimizer_bytes",
    "memory/autocast_copies_bytes", "memory/rule_12n_bytes", "memory/measured_state_bytes",
    "throughput/train_samples_per_s", ACTIVATIONS_ESTIMATED, ACTIVATIONS_MEASURED,
})  # fmt: skip
CHECKPOINT_ARTIFACTS = "checkpoint"  # the project's checkpoint; "model" is the MLflow Model (runs:/<id>/model)
CONTRACT_TAGS = ("stage", "paradigm", "variant", "git_commit", "params_hash", "device", "precision", "optimizer")


@dataclass
class Trained:
    """What a paradigm's training hands to the contract."""

    module: nn.Module  # what trained: the estimator counts its parameters and buffers, and what of them trains
    # what trained it: its kind and parameter groups; None for a model nothing trained (compressed after training)
    optimizer: Optional[torch.optim.Optimizer]
    precision: str
    device: torch.device
    peak_bytes: int  # the training's measured peak (pipeline.memory.PeakMemory)
    state_bytes: int  # the model state measured after the first optimizer step
    labels_used: int  # labelled examples the result depended on
    fit_seconds: float
    samples_per_s: float
    metrics: Metrics  # the paradigm's scores (test/*, val/*) and its own measurements
    predictions: Predictions
    history: list[Metrics] = field(default_factory=list)  # per epoch or round, for the plots
    logged: frozenset[str] = frozenset()  # metrics the training already logged (per epoch, per round, by the test loop)
    step: Optional[int] = None  # the MLflow step of the final values: rounds or labels used; None for epoch fits
    # contract metrics this run has no value for (a federated run in which no client ever trained has no loss)
    cannot_have: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SavedModel:
    """Where the trained model goes (a file, or a folder for an adapter), what writes it there, and the network
    to deploy: the trained one, or one built from it (an adapter merged into its base). Its inference is timed;
    ``exported``, when given, is what the MLflow Model holds instead, for a network ``torch.export`` cannot trace
    (int8 layers: their dequantised weights)."""

    path: Path
    write: Callable[[Path], None]
    network: Callable[[], nn.Module]  # inputs to logits (a tensor, or a dict of them per output)
    exported: Optional[Callable[[], nn.Module]] = None

    @classmethod
    def classifier(cls, path: Path, model: nn.Module, model_cfg: ModelConfig, task: TaskData) -> SavedModel:
        """A classifier checkpoint for ``task`` that :func:`pipeline.models.checkpoint.load_classifier` reads back."""
        return cls(
            Path(path), lambda at: save_classifier(at, model, model_cfg, task.input_shape, task.classes), lambda: model
        )


class TrackedRun:
    def __init__(self, run: mlflow.ActiveRun, spec: RunSpec, deployment: DeploymentConfig):
        self.run, self.spec, self.deployment = run, spec, deployment
        self.steps = StepMetrics(run.info.run_id)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def log_step(self, metrics: Metrics, step: int) -> None:
        """Metrics of one round (epoch, query) at ``step``, written in batches (:mod:`.step_metrics`)."""
        self.steps.log(metrics, step)

    def finish(
        self,
        trained: Trained,
        data: TaskData,
        classes: dict[str, np.ndarray],
        saved: SavedModel,
        derived: Optional[Callable[[Metrics], Metrics]] = None,
    ) -> dict:
        """Log the contract for ``trained`` on ``data``, save it, return ``{"run_id": ..., <metric>: value}``.

        ``classes`` names each output's classes (its confusion matrix, the served model's labels);
        ``derived(metrics)`` adds metrics computed from the run's own (e.g. ratios against other runs),
        logged on it too.
        """
        metrics = (
            trained.metrics
            | _model_state(trained)
            | {
                "memory/peak_bytes": trained.peak_bytes,
                "data/labels_used": trained.labels_used,
                "time/fit_seconds": trained.fit_seconds,
            }
        )
        mlflow.set_tags(
            {
                "device": str(trained.device),
                "precision": trained.precision,
                # e.g. LoraFAOptimizer, whatever trainer.optimizer says; "none" for a model compressed after training
                "optimizer": type(trained.optimizer).__name__ if trained.optimizer is not None else "none",
            }
        )
        log_confusions(trained.predictions, classes, self.spec.label, metrics)
        saved.write(saved.path)
        deployed = saved.network()
        metrics[SIZE_METRIC] = size_on_disk(saved.path)
        metrics[NONZERO_METRIC] = count_nonzero_weights(deployed)
        metrics |= measure_inference(deployed, data.X["test"], trained.device, self.deployment).as_metrics()
        metrics |= derived(metrics) if derived else {}
        mlflow.log_metrics({k: v for k, v in metrics.items() if k not in trained.logged}, step=trained.step)
        self.steps.flush()  # the rounds' metrics are part of what the contract checks
        if is_global_zero():  # a distributed fit's later processes saved nothing, and Lightning logs on rank 0 only
            log_saved_model(saved.path)
            log_predictions(trained.predictions)
            log_datasets(data)
            started = time.perf_counter()
            exported = saved.exported() if saved.exported is not None else deployed
            served = {AGREEMENT_METRIC: log_mlflow_model(exported, data, classes, trained.predictions)}
            served[MODEL_LOGGING_METRIC] = time.perf_counter() - started  # what logging the MLflow Model cost
            mlflow.log_metrics(served, step=trained.step)
            metrics |= served
            self._check_contract(trained.cannot_have | (TRAINING_ONLY if trained.optimizer is None else frozenset()))
        return {"run_id": self.run_id, **metrics}

    def _check_contract(self, cannot_have: frozenset[str]) -> None:
        logged = mlflow.MlflowClient().get_run(self.run_id).data
        missing = [key for key in CONTRACT_METRICS if key not in logged.metrics and key not in cannot_have]
        missing += [f"tag {key}" for key in CONTRACT_TAGS if key not in logged.tags]
        if missing:
            raise RuntimeError(f"run {self.spec.label} breaks the run contract: it logged no {', '.join(missing)}")


@contextmanager
def tracked_run(params: SharedParams, spec: RunSpec, tags: Optional[dict[str, str]] = None) -> Iterator[TrackedRun]:
    """The stage's MLflow run for ``spec`` (FINISHED on success, FAILED if the block raises), with ``tags``."""
    with stage_run(params, spec) as run:
        mlflow.set_tags(tags or {})
        tracked = TrackedRun(run, spec, params.deployment)
        try:
            yield tracked
        finally:  # a failed run keeps the rounds it logged
            tracked.steps.flush()


def _model_state(trained: Trained) -> Metrics:
    """The training memory estimate, the measured model state and training throughput; for a model nothing
    trained, its weights counted (none trainable) and nothing else."""
    if trained.optimizer is None:
        return {"params/total": count_weights(trained.module), "params/trainable": 0}
    estimate = estimate_training_memory(trained.module, trained.optimizer, trained.precision)
    return estimate.as_metrics() | {
        "memory/measured_state_bytes": trained.state_bytes,
        "throughput/train_samples_per_s": trained.samples_per_s,
    }


def log_confusions(predictions: Predictions, classes: dict[str, np.ndarray], label: str, metrics: Metrics) -> None:
    """One confusion matrix per output: ``plots/confusion_matrix.png``, or ``..._<output>.png`` for several."""
    several = len(predictions) > 1
    for output, (y_true, y_pred) in predictions.items():
        names = classes[output]
        matrix = np.zeros((len(names), len(names)), dtype=int)
        np.add.at(matrix, (y_true, y_pred), 1)
        acc = metrics.get(f"test/{output}/acc", metrics["test/acc"])
        title = f"{label}{f' · {output}' if several else ''}: test, acc {acc:.3f}"
        fig = figures.confusion_figure(matrix, names, title)
        mlflow.log_figure(fig, f"plots/confusion_matrix_{output}.png" if several else "plots/confusion_matrix.png")
        figures.close(fig)


def log_predictions(predictions: Predictions) -> None:
    """Every test example's true and predicted class per output, as :data:`PREDICTIONS_ARTIFACT` (a few KiB)."""
    arrays = {
        f"{output}_{kind}": np.asarray(classes, dtype=np.int32)
        for output, pair in predictions.items()
        for kind, classes in zip(("true", "pred"), pair)
    }
    folder, _, name = PREDICTIONS_ARTIFACT.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-") as tmp:
        np.savez_compressed(Path(tmp) / name, **arrays)
        mlflow.log_artifact(str(Path(tmp) / name), folder)


def log_saved_model(saved_at: Path) -> None:
    """The project's own checkpoint (or adapter folder) under the run's artifacts ``checkpoint/``."""
    if saved_at.is_dir():
        mlflow.log_artifacts(str(saved_at), f"{CHECKPOINT_ARTIFACTS}/{saved_at.name}")
    else:
        mlflow.log_artifact(str(saved_at), CHECKPOINT_ARTIFACTS)


def size_on_disk(path: Path) -> int:
    if not is_global_zero():  # a distributed fit's later processes saved nothing (pipeline.ranks)
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
