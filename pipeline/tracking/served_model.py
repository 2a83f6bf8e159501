"""The MLflow Model every training run logs, as MLflow loads it: torch, NumPy and pandas, nothing of this project.

MLflow copies this file into the model (a model from code) and runs it to load the model, so
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work wherever torch is installed, with no
import of ``pipeline``. The model's artifacts (written by :mod:`pipeline.tracking.mlflow_model`):

- ``program``: the trained network as a ``torch.export`` program (``.pt2``: a traced graph and its
  weights; loading it runs no pickled code); an adapter run's network has its adapters merged in;
- ``card``: JSON with the input shape, the input scaling ``prepare`` fitted (``x' = (x - shift) / divisor``)
  and, per output, the class labels.

Input: raw examples as the dataset holds them (before ``data.scale``), shape ``(n, *input_shape)``.
Output: a DataFrame with, per output, the predicted label (column ``<output>``) and the probability of
each class (``<output>_p_<label>``). A classifier's one output is ``label``; a multi-task model has one
per task.
"""

import json

import mlflow
import numpy as np
import pandas as pd
import torch


class ServedClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["card"]) as file:
            card = json.load(file)
        self.outputs = card["outputs"]  # output name -> its class labels, in class-index order
        self.input_shape = tuple(card["input_shape"])
        self.shift = np.asarray(card["shift"], dtype=np.float32)
        self.divisor = np.asarray(card["divisor"], dtype=np.float32)
        self.program = torch.export.load(context.artifacts["program"]).module()

    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        # annotated: MLflow then takes the signature as logged, and does not warn that type hints are missing
        raw = np.asarray(model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input)
        raw = raw.reshape((-1, *self.input_shape))
        scaled = ((raw - self.shift) / self.divisor).astype(np.float32)  # as prepare scaled the training inputs
        with torch.no_grad():
            logits = self.program(torch.from_numpy(scaled))
        if not isinstance(logits, dict):
            logits = {next(iter(self.outputs)): logits}
        columns = {}
        for output, labels in self.outputs.items():
            scores = logits[output].float()
            probs = torch.softmax(scores, dim=1).numpy()
            columns[output] = np.asarray(labels)[scores.argmax(dim=1).numpy()]  # the class the pipeline predicts
            columns |= {f"{output}_p_{label}": probs[:, k] for k, label in enumerate(labels)}
        return pd.DataFrame(columns)


mlflow.models.set_model(ServedClassifier())
