"""Lower-precision copies of a trained classifier: dynamic int8 linear layers, and half-precision weights.

Dynamic int8 (``torch.ao.quantization.quantize_dynamic``) stores each linear layer's weights as int8 with
one scale per tensor and quantises activations on the fly; its kernels run on the CPU only. It is saved as
its own state dict (int8 weights, packed) and rebuilt by quantising a float model of the same shape and
loading that into it. ``torch.export`` cannot trace the packed layers, so the MLflow Model of an int8 run
holds :func:`dequantized` weights: the int8 values at their scale, computed in float.

torch 2.13 marks ``torch.ao.quantization`` deprecated in favour of ``torchao``; it still works, and its
warnings are silenced here so that a stage's output stays readable.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from pipeline.config.schema import ModelConfig
from pipeline.deployment.weights import is_quantized_linear
from pipeline.io import atomic_path
from pipeline.models.checkpoint import plain_labels, read_checkpoint
from pipeline.models.classifier import Classifier, build_classifier

INT8_FORMAT = "paradigm-lab/int8-classifier-v1"


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation.*|.*TypedStorage is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*torch\.quantize_per_tensor.*")
        yield


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose linear layers hold int8 weights (on the CPU, in eval mode)."""
    with _quiet():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def dequantized(quantized: nn.Module, like: nn.Module) -> nn.Module:
    """A float copy of ``like`` carrying ``quantized``'s int8 weights at their scale."""
    model = copy.deepcopy(like).cpu().eval()
    for name, module in quantized.named_modules():
        if is_quantized_linear(module):
            target = model.get_submodule(name)
            with _quiet(), torch.no_grad():
                target.weight.copy_(module.weight().dequantize())
                target.bias.copy_(module.bias())
    return model


def save_int8(path: str | Path, quantized: nn.Module, model_cfg: ModelConfig, input_shape, classes) -> None:
    payload = {
        "format": INT8_FORMAT,
        "model": model_cfg.model_dump(mode="json"),
        "input_shape": list(input_shape),
        "classes": plain_labels(classes),
        "state_dict": quantized.state_dict(),
    }
    with _quiet(), atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


def load_int8(path: str | Path, model_cfg: ModelConfig) -> Classifier:
    """The saved int8 classifier, rebuilt (weights only: no pickled code runs)."""
    with _quiet():
        payload = read_checkpoint(path, INT8_FORMAT, model_cfg, "compress")
    model = quantize_int8(build_classifier(model_cfg, tuple(payload["input_shape"]), len(payload["classes"])))
    with _quiet():
        model.load_state_dict(payload["state_dict"])
    return model


class HalfPrecision(nn.Module):
    """A network in half precision that takes and returns float32, as the float model it came from does."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = copy.deepcopy(network).half().eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.half()).float()
