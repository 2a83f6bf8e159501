"""A model compressed after training, as a run of its own: scored on every split, then logged by the run contract.

Nothing trains it, so it has no training memory or throughput (the contract's ``TRAINING_ONLY`` metrics);
its ``time/fit_seconds`` is what the compression took, and its labels are those its source model used.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import SPLITS, TaskData
from pipeline.memory import PeakMemory
from pipeline.tracking.contract import Metrics, RunSpec, SavedModel, Trained, tracked_run
from pipeline.training.lightning_module import OUTPUT
from pipeline.training.scores import classification_scores


def score(network: nn.Module, task: TaskData, device: torch.device) -> tuple[Metrics, np.ndarray]:
    """Loss per split, accuracy on validation and test, macro-F1 on test, as a trained classifier's run logs them
    (:func:`pipeline.training.scores.classification_scores`); the test predictions."""
    network.eval()
    with torch.inference_mode():
        logits = {split: network(torch.from_numpy(task.X[split]).to(device)).float().cpu() for split in SPLITS}
    metrics = {"train/loss": classification_scores(logits["train"], task.y["train"])["loss"]}
    metrics |= {f"val/{k}": v for k, v in classification_scores(logits["val"], task.y["val"]).items()}
    test = classification_scores(logits["test"], task.y["test"], task.num_classes)
    metrics |= {f"test/{k}": v for k, v in test.items()}
    return metrics, logits["test"].argmax(dim=1).numpy()


def evaluated_run(
    params: SharedParams,
    spec: RunSpec,
    compress: Callable[[], nn.Module],
    task: TaskData,
    saved: Callable[[nn.Module], SavedModel],
    device: torch.device,
    precision: str,
    labels_used: int,
    derived: Optional[Callable[[Metrics], Metrics]] = None,
) -> dict:
    """Run ``compress()`` (timed: the run's fit time), score what it returns on ``device`` and log it as ``spec``'s
    run; ``saved(network)`` says how it is saved."""
    with tracked_run(params, spec) as run:
        with PeakMemory(device) as peak:  # the compression and the scoring: on the CPU, what they create
            started = time.perf_counter()
            network = compress().to(device)
            seconds = time.perf_counter() - started
            metrics, predicted = score(network, task, device)
        trained = Trained(
            module=network,
            optimizer=None,
            precision=precision,
            device=device,
            peak_bytes=peak.peak_bytes,
            state_bytes=0,
            labels_used=labels_used,
            fit_seconds=seconds,
            samples_per_s=0.0,
            metrics=metrics,
            predictions={OUTPUT: (task.y["test"], predicted)},
        )
        return run.finish(trained, task, {OUTPUT: task.classes}, saved(network), derived)
