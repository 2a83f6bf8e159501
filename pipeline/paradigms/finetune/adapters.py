"""Parameter-efficient fine-tuning with PEFT: LoRA, LoRA-FA and VeRA adapters on the body.

The pretrained body stays frozen; only the adapters and the new head (PEFT's
``modules_to_save``) train. Adapters are saved apart from the base (a few kilobytes of
safetensors) and can be merged into it for inference.

- ``lora``: W + (alpha / r) · B·A on every linear and convolution layer of the body;
- ``lora_fa``: the same adapters with A frozen at its random initialisation; only B trains,
  with PEFT's LoRA-FA optimizer (AdamW with B's gradient projected through A);
- ``vera``: one pair of frozen random matrices shared by all layers, with trainable scaling
  vectors per layer (linear layers only).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, VeraConfig, get_peft_model
from peft.optimizers import create_lorafa_optimizer
from torch import nn

from pipeline.config.schema import ModelConfig, TrainerConfig
from pipeline.errors import DataError
from pipeline.io import atomic_dir
from pipeline.models.checkpoint import plain_labels
from pipeline.models.classifier import Classifier
from pipeline.models.reuse import renew_top_layers
from pipeline.paradigms.finetune.config import LINEAR_ONLY, FinetuneConfig

HEAD = "head"
TARGET_FILE = "target.json"  # what rebuilding the model around the adapter needs besides the base checkpoint


def adaptable_layers(model: Classifier, strategy: str) -> list[str]:
    """Names of the body's layers the adapter wraps: linear and (LoRA only) 1-D and 2-D convolution layers."""
    kinds = (nn.Linear,) if strategy in LINEAR_ONLY else (nn.Linear, nn.Conv1d, nn.Conv2d)
    return [f"body.{name}" for name, module in model.body.named_modules() if isinstance(module, kinds)]


def add_adapters(model: Classifier, strategy: str, cfg: FinetuneConfig, seed: int) -> PeftModel:
    """Freeze ``model`` and wrap it with the strategy's adapters; the head trains in full."""
    targets = adaptable_layers(model, strategy)
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
        )
    peft_model = get_peft_model(model, config)
    if strategy == "lora_fa":
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:
                param.requires_grad_(False)
    return peft_model


def lora_fa_optimizer(cfg: FinetuneConfig):
    """An optimizer factory for :class:`ClassificationModule`: PEFT's LoRA-FA optimizer with ``trainer.lr`` and
    ``trainer.weight_decay``."""

    def build(model: nn.Module, trainer_cfg: TrainerConfig) -> torch.optim.Optimizer:
        return create_lorafa_optimizer(model, cfg.lora.r, cfg.lora.alpha, trainer_cfg.lr, trainer_cfg.weight_decay)

    return build


def save_adapter(path: str | Path, model: PeftModel, classes, input_shape: tuple[int, ...]) -> None:
    """The adapter (and new head) as safetensors in folder ``path``, plus the target task's classes and input shape."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(str(tmp))
        (tmp / "README.md").unlink(missing_ok=True)  # PEFT's model-card template for the Hugging Face Hub
        target = {"classes": plain_labels(classes), "input_shape": list(input_shape)}
        (tmp / TARGET_FILE).write_text(json.dumps(target, indent=2) + "\n")


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
    adapted = PeftModel.from_pretrained(base, str(path))
    return adapted.merge_and_unload() if merge else adapted
