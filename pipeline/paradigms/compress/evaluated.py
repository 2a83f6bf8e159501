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
from torch.nn import functional as F
from torchmetrics.functional.classification import multiclass_f1_score

from pipeline.config.params import Params
from pipeline.data.prepared import TaskData
from pipeline.memory import PeakMemory
from pipeline.models.lightning_module import OUTPUT
from pipeline.tracking.contract import Metrics, RunSpec, SavedModel, Trained, tracked_run


def score(network: nn.Module, task: TaskData, device: torch.device) -> tuple[Metrics, np.ndarray]:
    """Loss (and accuracy, macro-F1) per split, as a trained classifier's run logs them; the test predictions."""
    metrics, predicted = {}, None
    network.eval()
    with torch.inference_mode():
        for split, prefix in (("train", "train"), ("val", "val"), ("test", "test")):
            logits = network(torch.from_numpy(task.X[split]).to(device)).float().cpu()
            y = torch.from_numpy(task.y[split])
            metrics[f"{prefix}/loss"] = float(F.cross_entropy(logits, y))
            if split != "train":
                metrics[f"{prefix}/acc"] = float((logits.argmax(dim=1) == y).float().mean())
            if split == "test":
                f1 = multiclass_f1_score(logits, y, task.num_classes, average="macro")
                metrics["test/f1_macro"] = float(f1)
                predicted = logits.argmax(dim=1).numpy()
    return metrics, predicted


def evaluated_run(
    params: Params,
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
        with PeakMemory(device) as peak:  # the compression and the scoring
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
