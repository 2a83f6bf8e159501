"""Classifier and multi-task checkpoints that later stages (and users) can trust and check.

A checkpoint holds the weights plus what is needed to rebuild and verify the model: the
``model`` params it was built with, the input shape and the class labels (per task for a
multi-task network). Loading uses ``torch.load(..., weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.config.schema import ModelConfig
from pipeline.errors import ConfigError, DataError
from pipeline.io import atomic_path
from pipeline.models.classifier import Classifier, build_classifier
from pipeline.models.multitask import Branch, MultiTaskNet, build_multitask_net

FORMAT = "paradigm-lab/classifier-v1"
MULTITASK_FORMAT = "paradigm-lab/multitask-v1"


def save_classifier(
    path: str | Path,
    model: Classifier,
    model_cfg: ModelConfig,
    input_shape: tuple[int, ...],
    classes,
    sparse: bool = False,
) -> None:
    """``sparse``: store each mostly-zero weight (a pruned one) as a bit mask and its non-zero values
    (:func:`pack_sparse`), so the file shrinks with the zeros; it loads back dense."""
    _save(path, FORMAT, model.state_dict(), model_cfg, input_shape, sparse, classes=plain_labels(classes))


def load_classifier(path: str | Path, model_cfg: ModelConfig, stage: str = "pretrain") -> tuple[Classifier, dict]:
    """Rebuild the saved classifier; fail clearly if it is missing or was built from other ``model`` params
    (``stage``: the one that writes it, named in the error)."""
    payload = read_checkpoint(path, FORMAT, model_cfg, stage)
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
    _save(path, MULTITASK_FORMAT, net.state_dict(), model_cfg, input_shape, tasks=tasks)


def load_multitask(path: str | Path, model_cfg: ModelConfig) -> tuple[MultiTaskNet, dict]:
    """Rebuild a saved multi-task (or single-task) network of the ``multitask`` stage."""
    payload = read_checkpoint(path, MULTITASK_FORMAT, model_cfg, "multitask")
    branches = [Branch(t["name"], tuple(t["tower"]), len(t["classes"])) for t in payload["tasks"]]
    net = build_multitask_net(model_cfg, tuple(payload["input_shape"]), branches)
    net.load_state_dict(payload["state_dict"])
    return net, payload


def _save(
    path: str | Path,
    fmt: str,
    state: dict[str, torch.Tensor],
    model_cfg: ModelConfig,
    input_shape: tuple[int, ...],
    sparse: bool = False,
    **labels,
) -> None:
    state = {k: v.detach().cpu() for k, v in state.items()}
    packed = {k: pack_sparse(v) for k, v in state.items() if sparse and _mostly_zero(v)}
    payload = {
        "format": fmt,
        "model": model_cfg.model_dump(mode="json"),
        "input_shape": list(input_shape),
        **labels,
        "state_dict": {k: v for k, v in state.items() if k not in packed},
        **({"sparse_state_dict": packed} if packed else {}),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)  # to a handle: a path would put the random temp name inside the archive


def read_checkpoint(path: str | Path, fmt: str, model_cfg: ModelConfig, stage: str) -> dict:
    """The checkpoint's payload, once it is known to be ``fmt`` and built from ``model_cfg`` (``stage``: the one
    that writes it, which the errors tell the user to re-run)."""
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
    payload["state_dict"] |= {k: unpack_sparse(v) for k, v in payload.pop("sparse_state_dict", {}).items()}
    wanted = model_cfg.model_dump(mode="json")
    if payload["model"] != wanted:
        differ = sorted(k for k in wanted if payload["model"].get(k) != wanted[k])
        saved = ", ".join(f"{k}={payload['model'].get(k)!r}" for k in differ)
        asked = ", ".join(f"{k}={wanted[k]!r}" for k in differ)
        raise ConfigError(
            f"{path}: checkpoint was built with model {saved}, but params.yaml names model {asked}; re-run {stage}"
        )
    return payload


def pack_sparse(tensor: torch.Tensor) -> dict:
    """A tensor as its shape, a bit mask of its non-zero entries (one bit each) and those entries: a weight pruned
    to sparsity s takes ``1/32 + (1 − s)`` of its dense fp32 bytes (a COO index would cost 8 bytes per entry)."""
    flat = tensor.reshape(-1)
    mask = flat != 0
    return {
        "shape": list(tensor.shape),
        "mask": torch.from_numpy(np.packbits(mask.numpy())),
        "values": flat[mask].clone(),
    }


def unpack_sparse(packed: dict) -> torch.Tensor:
    shape = packed["shape"]
    count = int(np.prod(shape))
    mask = torch.from_numpy(np.unpackbits(packed["mask"].numpy(), count=count).astype(bool))
    dense = torch.zeros(count, dtype=packed["values"].dtype)
    dense[mask] = packed["values"]
    return dense.reshape(shape)


def _mostly_zero(tensor: torch.Tensor) -> bool:
    """Worth packing: a floating tensor with more zeros than its mask costs (1 bit an entry: 1/32 of an fp32)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return False
    return float((tensor == 0).float().mean()) > 1 / (8 * tensor.element_size())


def plain_labels(classes) -> list:
    """Class labels as plain Python values (NumPy scalars become ints/strs), for checkpoints and JSON."""
    return [c.item() if hasattr(c, "item") else c for c in classes]
