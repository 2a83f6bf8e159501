"""Classifier and multi-task checkpoints that later stages (and users) can trust and check.

A checkpoint holds the weights plus what is needed to rebuild and verify the model: the
``model`` params it was built with, the input shape and the class labels (per task for a
multi-task network). Loading uses ``torch.load(..., weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.config.schema import ModelConfig
from pipeline.errors import ConfigError, DataError
from pipeline.io import atomic_path
from pipeline.models.classifier import Classifier, build_classifier
from pipeline.models.multitask import Branch, MultiTaskNet, build_multitask_net

FORMAT = "paradigm-lab/classifier-v1"
MULTITASK_FORMAT = "paradigm-lab/multitask-v1"


def save_classifier(
    path: str | Path, model: Classifier, model_cfg: ModelConfig, input_shape: tuple[int, ...], classes
) -> None:
    _save(path, FORMAT, model, model_cfg, input_shape, classes=plain_labels(classes))


def load_classifier(path: str | Path, model_cfg: ModelConfig) -> tuple[Classifier, dict]:
    """Rebuild the saved classifier; fail clearly if it is missing or was built from other ``model`` params."""
    payload = _load(path, FORMAT, model_cfg, "pretrain")
    model = build_classifier(model_cfg, tuple(payload["input_shape"]), len(payload["classes"]))
    model.load_state_dict(payload["state_dict"])
    return model, payload


def save_multitask(
    path: str | Path,
    net: MultiTaskNet,
    model_cfg: ModelConfig,
    input_shape: tuple[int, ...],
    branches: list[Branch],
    classes: dict,
) -> None:
    """``classes[task]``: what each of the task's class indices stands for."""
    tasks = [{"name": b.name, "tower": list(b.tower), "classes": plain_labels(classes[b.name])} for b in branches]
    _save(path, MULTITASK_FORMAT, net, model_cfg, input_shape, tasks=tasks)


def load_multitask(path: str | Path, model_cfg: ModelConfig) -> tuple[MultiTaskNet, dict]:
    """Rebuild a saved multi-task (or single-task) network of the ``multitask`` stage."""
    payload = _load(path, MULTITASK_FORMAT, model_cfg, "multitask")
    branches = [Branch(t["name"], tuple(t["tower"]), len(t["classes"])) for t in payload["tasks"]]
    net = build_multitask_net(model_cfg, tuple(payload["input_shape"]), branches)
    net.load_state_dict(payload["state_dict"])
    return net, payload


def _save(
    path: str | Path, fmt: str, model: torch.nn.Module, model_cfg: ModelConfig, input_shape: tuple[int, ...], **labels
) -> None:
    payload = {
        "format": fmt,
        "model": model_cfg.model_dump(mode="json"),
        "input_shape": list(input_shape),
        **labels,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)  # to a handle: a path would put the random temp name inside the archive


def _load(path: str | Path, fmt: str, model_cfg: ModelConfig, stage: str) -> dict:
    """The checkpoint's payload, once it is known to be ``fmt`` and built from ``model_cfg``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found; run `dvc repro {stage}` first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # torch's own text spans many lines and suggests weights_only=False, which is never safe here.
        raise DataError(
            f"{path}: not a readable checkpoint: not a torch file, or it holds objects other than tensors and "
            f"plain values ({type(err).__name__}); re-create it with `dvc repro {stage}`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise DataError(f"{path}: not a {fmt} checkpoint")
    wanted = model_cfg.model_dump(mode="json")
    if payload["model"] != wanted:
        differ = sorted(k for k in wanted if payload["model"].get(k) != wanted[k])
        saved = ", ".join(f"{k}={payload['model'].get(k)!r}" for k in differ)
        asked = ", ".join(f"{k}={wanted[k]!r}" for k in differ)
        raise ConfigError(
            f"{path}: checkpoint was built with model {saved}, but params.yaml names model {asked}; re-run {stage}"
        )
    return payload


def plain_labels(classes) -> list:
    """Class labels as plain Python values (NumPy scalars become ints/strs), for checkpoints and JSON."""
    return [c.item() if hasattr(c, "item") else c for c in classes]
