"""A run's trained network as an MLflow Model (``runs:/<run id>/model``) that loads and serves without this project.

The network is exported with ``torch.export`` (a traced graph: no class of this project is needed to
run it, and loading it unpickles no code) and wrapped by :mod:`pipeline.tracking.served_model`, a
model from code that takes raw inputs, scales them as ``prepare`` did and returns each output's label
and class probabilities. The model carries a signature and an input example (a few test examples in
raw units), and its requirements are pinned here rather than inferred (inferring them loads the model
in a second process: seconds per run).

Before logging, the exported network answers the run's test split and :data:`AGREEMENT_METRIC` records
the share of examples on which it predicts what the trained network predicted (1.0 unless, e.g., merging
an adapter's weights moved a near tie).
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Iterator

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from torch import nn

from pipeline.data.prepared import TaskData
from pipeline.data.scaling import Scaling, fit_scaling
from pipeline.models.checkpoint import plain_labels
from pipeline.tracking.runs import MODEL_NAME
from pipeline.tracking.store import no_progress_bars

SERVED_MODEL = Path(__file__).with_name("served_model.py")
AGREEMENT_METRIC = "model/served_agreement"
MODEL_LOGGING_METRIC = "time/mlflow_model_seconds"
EXAMPLE_ROWS = 3
REQUIREMENTS = ("torch", "numpy", "pandas", "mlflow")

Classes = dict[str, np.ndarray]  # per output, the label of each class index
Predictions = dict[str, tuple[np.ndarray, np.ndarray]]


def log_mlflow_model(network: nn.Module, data: TaskData, classes: Classes, predictions: Predictions) -> float:
    """Export ``network`` and log it as the run's MLflow Model; return the agreement on the test split."""
    # a task built in memory (a test's, a benchmark's) has no scaling on disk: its model takes scaled inputs
    scaling = Scaling.beside(data.source) if data.source is not None else fit_scaling("none", data.X["train"])
    network = _own_storage(copy.deepcopy(network).cpu().eval())  # a copy: the trained one stays as it is (on a GPU)
    example = torch.from_numpy(data.X["test"][: max(2, EXAMPLE_ROWS)])
    with torch.no_grad():
        program = torch.export.export(network, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        answers = program.module()(torch.from_numpy(data.X["test"]))
    agreement = _agreement(answers, predictions)
    card = {
        "input_shape": list(data.input_shape),
        "shift": np.asarray(scaling.shift, dtype=np.float32).tolist(),
        "divisor": np.asarray(scaling.divisor, dtype=np.float32).tolist(),
        "outputs": {output: plain_labels(names) for output, names in classes.items()},
    }
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-model-") as tmp:
        torch.export.save(program, Path(tmp) / "program.pt2")
        (Path(tmp) / "card.json").write_text(json.dumps(card, indent=1))
        with _quiet():
            mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(SERVED_MODEL),
                artifacts={"program": str(Path(tmp) / "program.pt2"), "card": str(Path(tmp) / "card.json")},
                signature=signature(data.input_shape, classes),
                input_example=scaling.invert(data.X["test"][:EXAMPLE_ROWS]),
                pip_requirements=[f"{name}=={version(name).split('+')[0]}" for name in REQUIREMENTS],
            )
    return agreement


def signature(input_shape: tuple[int, ...], classes: Classes) -> ModelSignature:
    """Raw inputs in; per output its label and each class's probability out (:mod:`.served_model`)."""
    outputs = []
    for output, names in classes.items():
        outputs.append(ColSpec("string" if np.asarray(names).dtype.kind in "US" else "long", output))
        outputs += [ColSpec("double", f"{output}_p_{label}") for label in plain_labels(names)]
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float64), (-1, *input_shape))]), outputs=Schema(outputs)
    )


def _own_storage(network: nn.Module) -> nn.Module:
    """Every weight in a storage of its own: a view into a shared buffer (federated clients' flat state) would be
    saved with the whole buffer, and torch.export warns about it."""
    for module in network.modules():
        for name, tensor in [*module._parameters.items(), *module._buffers.items()]:
            if tensor is not None:
                setattr(
                    module,
                    name,
                    nn.Parameter(tensor.detach().clone(), tensor.requires_grad)
                    if isinstance(tensor, nn.Parameter)
                    else tensor.clone(),
                )
    return network


def _agreement(answers: torch.Tensor | dict[str, torch.Tensor], predictions: Predictions) -> float:
    """The share of test answers (over every output) on which the exported network agrees with the trained one."""
    if not isinstance(answers, dict):
        answers = {next(iter(predictions)): answers}
    same = [answers[output].argmax(dim=1).numpy() == predicted for output, (_, predicted) in predictions.items()]
    return float(np.concatenate(same).mean())


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's notes while it logs a model from code (input validation, download bars): noise in a stage's output."""
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with no_progress_bars():
            yield
    finally:
        logger.setLevel(level)
