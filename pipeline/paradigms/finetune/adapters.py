"""Parameter-efficient fine-tuning: adapters on the frozen body, most of them PEFT's.

The pretrained body stays frozen; only the adapters and the new head (PEFT's
``modules_to_save``) train. Adapters are saved apart from the base (a few kilobytes of
safetensors) and can be merged into it for inference.

- ``lora``: W + (alpha / r) · B·A on every linear and convolution layer of the body;
- ``lora_fa``: the same adapters with A frozen at its random initialisation; only B trains,
  with PEFT's LoRA-FA optimizer (AdamW with B's gradient projected through A);
- ``vera``: one pair of frozen random matrices shared by all layers, with trainable scaling
  vectors per layer (linear layers only);
- ``lora_fa_svd``: LoRA-FA with an SVD basis. PEFT's ``lora_B`` (out × r) is fixed to the top-r left
  singular vectors of W and frozen; ``lora_A`` trains from zero with the plain ``trainer.optimizer``.
  PEFT's ``scaling = alpha / r`` is kept: it multiplies what A learns, so ``finetune.lora.alpha`` sets the
  update's step size as for ``lora`` (the notes' W + A·Bᵀ is the same family, B absorbing the constant);
- ``pissa``: PEFT's PiSSA: B·A starts as W's top-r singular part and trains, the base keeps the residual.
  It is saved as the plain LoRA (rank 2r) of what training changed, PEFT's conversion, so it applies to the
  unmodified base (linear layers only: PEFT has no PiSSA initialisation for convolutions);
- ``svd_diag``: U_r·diag(d)·V_rᵀ + a sparse S on top of W (:mod:`pipeline.paradigms.finetune.svd_diag`).
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, VeraConfig, get_peft_model, get_peft_model_state_dict
from peft.optimizers import create_lorafa_optimizer
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.config.schema import ModelConfig, TrainerConfig
from pipeline.errors import DataError
from pipeline.io import atomic_dir
from pipeline.models.checkpoint import plain_labels
from pipeline.models.classifier import Classifier
from pipeline.models.reuse import renew_top_layers
from pipeline.paradigms.finetune.config import LINEAR_ONLY, FinetuneConfig
from pipeline.paradigms.finetune.svd_basis import check_rank, top_singular
from pipeline.paradigms.finetune.svd_diag import add_svd_diag, load_svd_diag, merge_svd_diag, svd_diag_state

HEAD = "head"
TARGET_FILE = "target.json"  # what rebuilding the model around the adapter needs besides the base checkpoint
WEIGHTS_FILE = "adapter_model.safetensors"  # PEFT's name; svd_diag writes its own tensors under it too
PISSA_START = "pissa_start"  # attribute of a PiSSA model: its adapter before training, for the conversion at save
INIT = {"lora_fa_svd": False, "pissa": "pissa"}  # LoraConfig.init_lora_weights (False: set by _fix_left_basis)


def adaptable_layers(model: Classifier, strategy: str) -> list[str]:
    """Names of the body's layers the adapter wraps: linear and (LoRA only) 1-D and 2-D convolution layers."""
    kinds = (nn.Linear,) if strategy in LINEAR_ONLY else (nn.Linear, nn.Conv1d, nn.Conv2d)
    return [f"body.{name}" for name, module in model.body.named_modules() if isinstance(module, kinds)]


def add_adapters(model: Classifier, strategy: str, cfg: FinetuneConfig, seed: int) -> nn.Module:
    """Freeze ``model`` and wrap it with the strategy's adapters; the head trains in full."""
    targets = adaptable_layers(model, strategy)
    if strategy == "svd_diag":
        return add_svd_diag(model, targets, cfg.svd_diag, seed)
    if strategy in INIT:
        check_rank({name: model.get_submodule(name) for name in targets}, cfg.lora.r, "finetune.lora.r")
    if strategy == "vera":
        config = VeraConfig(
            r=cfg.vera.r,
            target_modules=targets,
            projection_prng_key=seed,
            save_projection=True,
            vera_dropout=cfg.vera.dropout,
            d_initial=cfg.vera.d_initial,
            modules_to_save=[HEAD],
        )
    else:
        config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=targets,
            modules_to_save=[HEAD],
            init_lora_weights=INIT.get(strategy, True),
        )
    peft_model = get_peft_model(model, config)
    if strategy == "lora_fa":
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:
                param.requires_grad_(False)
    if strategy == "lora_fa_svd":
        _fix_left_basis(peft_model)
    if strategy == "pissa":
        start = get_peft_model_state_dict(peft_model)
        setattr(peft_model, PISSA_START, {k: v.detach().clone() for k, v in start.items()})
    return peft_model


def _fix_left_basis(model: PeftModel) -> None:
    """``lora_B`` (out × r; a 1×1 convolution for conv layers) := the top-r left singular vectors of the base
    weight, frozen; ``lora_A`` := 0, so the adapted model starts as the base."""
    for layer in model.modules():
        if isinstance(layer, LoraLayer):
            for name, b in layer.lora_B.items():
                u, _, _ = top_singular(layer.get_base_layer(), layer.r[name])
                b.weight.data.copy_(u.reshape(b.weight.shape))
                b.weight.requires_grad_(False)
                nn.init.zeros_(layer.lora_A[name].weight)


def lora_fa_optimizer(cfg: FinetuneConfig):
    """An optimizer factory for :class:`ClassificationModule`: PEFT's LoRA-FA optimizer with ``trainer.lr`` and
    ``trainer.weight_decay``."""

    def build(model: nn.Module, trainer_cfg: TrainerConfig) -> torch.optim.Optimizer:
        return create_lorafa_optimizer(model, cfg.lora.r, cfg.lora.alpha, trainer_cfg.lr, trainer_cfg.weight_decay)

    return build


def save_adapter(path: str | Path, model: nn.Module, classes, input_shape: tuple[int, ...]) -> None:
    """The adapter (and new head) as safetensors in folder ``path``, plus the target task's classes and input shape."""
    with atomic_dir(path) as tmp:
        if isinstance(model, PeftModel):
            _save_peft(tmp, model)
        else:
            save_file(svd_diag_state(model), tmp / WEIGHTS_FILE)
        kind = "peft" if isinstance(model, PeftModel) else "svd_diag"
        target = {"classes": plain_labels(classes), "input_shape": list(input_shape), "adapter": kind}
        (tmp / TARGET_FILE).write_text(json.dumps(target, indent=2) + "\n")


def _save_peft(folder: Path, model: PeftModel) -> None:
    """PEFT's files; PiSSA's converted to the plain LoRA of ΔW = B·A − B₀·A₀ (rank 2r), which applies to the
    unmodified base, through PEFT's ``path_initial_model_for_weight_conversion``."""
    start = getattr(model, PISSA_START, None)
    if start is None:
        model.save_pretrained(str(folder))
    else:
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
            # the conversion loads the start as a second adapter for a moment, which PEFT warns PiSSA is unfit for
            warnings.filterwarnings("ignore", "PiSSA changes the base weights")
            initial = Path(scratch) / "initial"
            initial.mkdir()
            save_file(start, initial / WEIGHTS_FILE)
            model.save_pretrained(str(folder), path_initial_model_for_weight_conversion=str(initial))
        # peft 0.21's conversion returns lora_A / lora_B alone: the trained head (modules_to_save) goes back in
        head = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items() if "lora_" not in k}
        save_file(load_file(folder / WEIGHTS_FILE) | head, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    (folder / "README.md").unlink(missing_ok=True)  # PEFT's model-card template for the Hugging Face Hub


def merged_copy(model: nn.Module) -> nn.Module:
    """A copy of the adapted ``model`` with its adapters merged into plain layers, for inference."""
    model = copy.deepcopy(model)
    return model.merge_and_unload() if isinstance(model, PeftModel) else merge_svd_diag(model)


def load_adapted(path: str | Path, base: Classifier, model_cfg: ModelConfig, merge: bool = True) -> nn.Module:
    """The base with the saved adapter applied; merged into plain layers (the default) for inference.

    ``base`` is the pretrained classifier (its head is replaced by one sized for the target task).
    """
    path = Path(path)
    if not (path / TARGET_FILE).is_file():
        raise DataError(f"{path}: not a saved adapter (no {TARGET_FILE}); re-run `dvc repro finetune`")
    target = json.loads((path / TARGET_FILE).read_text())
    # the adapter fills it
    renew_top_layers(base, model_cfg, tuple(target["input_shape"]), len(target["classes"]), [HEAD])
    if target.get("adapter", "peft") == "svd_diag":
        adapted = load_svd_diag(base, load_file(path / WEIGHTS_FILE))
        return merge_svd_diag(adapted) if merge else adapted
    adapted = PeftModel.from_pretrained(base, str(path))
    return adapted.merge_and_unload() if merge else adapted
