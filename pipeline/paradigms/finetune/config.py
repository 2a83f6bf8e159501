"""The ``finetune`` params section: the strategies, their settings, and how they must fit the backbone."""

from __future__ import annotations

import typing
from typing import Literal, Optional

from pydantic import Field, field_validator

from pipeline.config.schema import Section, SharedParams, StageSection, once_each

Strategy = Literal["full", "partial", "lora", "lora_fa", "vera", "lora_fa_svd", "svd_diag", "pissa"]
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)
# adapters on the frozen body, saved apart from the base (pipeline.paradigms.finetune.adapters)
ADAPTERS = ("lora", "lora_fa", "vera", "lora_fa_svd", "svd_diag", "pissa")
# linear layers only: VeRA; peft's LoRA-FA optimizer (A A^T of a 2-D A); PiSSA (peft has no conv init); svd_diag
LINEAR_ONLY = ("lora_fa", "vera", "svd_diag", "pissa")


class LoraSettings(Section):
    """LoRA, LoRA-FA, LoRA-FA with an SVD basis and PiSSA: W + (alpha / r) · B·A."""

    r: int = Field(2, ge=1)
    alpha: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class SvdDiagSettings(Section):
    """svd_diag: W + U_r·diag(d)·V_rᵀ + S; d and S's values train from 0, S at fixed positions."""

    r: int = Field(4, ge=1)
    density: float = Field(0.01, gt=0, le=1)
    positions: Literal["largest", "random"] = "largest"


class VeraSettings(Section):
    """VeRA: shared frozen random A, B; per layer trainable scaling vectors d (size r) and b (layer width)."""

    r: int = Field(256, ge=1)
    d_initial: float = Field(0.1, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class FinetuneConfig(StageSection):
    strategies: Optional[list[Strategy]] = Field(None, min_length=1)  # None: every strategy the backbone supports
    body_lr_factor: float = Field(1.0, gt=0, le=1)  # full, partial: the body's lr is trainer.lr × this
    unfreeze_layers: int = Field(2, ge=1)  # partial: the top N layers train (the head is one)
    unfreeze_every: Optional[int] = Field(None, ge=1)  # partial: gradual unfreezing, one more layer every N epochs
    lora: LoraSettings = Field(default_factory=LoraSettings)
    vera: VeraSettings = Field(default_factory=VeraSettings)
    svd_diag: SvdDiagSettings = Field(default_factory=SvdDiagSettings)

    @field_validator("strategies")
    @classmethod
    def _once_each(cls, strategies: Optional[list[str]]) -> Optional[list[str]]:
        return strategies if strategies is None else once_each(strategies, "strategy")

    def strategies_for(self, backbone: str) -> list[str]:
        """``strategies``, or when it is null every strategy the backbone supports (LINEAR_ONLY: mlp only)."""
        if self.strategies is not None:
            return list(self.strategies)
        return [s for s in STRATEGIES if not (s in LINEAR_ONLY and backbone != "mlp")]


def check_finetune(params: SharedParams) -> None:
    depth, backbone, cfg = params.model.depth, params.model.backbone, params.finetune
    if cfg.unfreeze_layers > depth:
        raise ValueError(
            f"finetune.unfreeze_layers = {cfg.unfreeze_layers}: the {backbone} backbone has {depth} layers "
            f"(head included); allowed 1..{depth}"
        )
    linear_only = [s for s in cfg.strategies or [] if s in LINEAR_ONLY and backbone != "mlp"]
    if linear_only:
        raise ValueError(
            f"finetune.strategies includes {', '.join(map(repr, linear_only))}, which adapt only linear layers "
            f"(VeRA, PiSSA, svd_diag; LoRA-FA's optimizer), and the {backbone} backbone's body has none; remove them "
            "from finetune.strategies or use model.backbone 'mlp'"
        )
    _check_ranks(params)


RANKED = {"finetune.lora.r": ("lora_fa_svd", "pissa"), "finetune.svd_diag.r": ("svd_diag",)}  # r ≤ every layer's dims


def _check_ranks(params: SharedParams) -> None:
    """An SVD basis of rank r needs r ≤ each adapted layer's smaller dimension. The mlp's widths are known here (its
    input width and convolutions' shapes only once the data is: the adapters check those when they are built)."""
    cfg, sizes = params.finetune, params.model.hidden_sizes
    if params.model.backbone != "mlp":
        return
    chosen = cfg.strategies_for("mlp")
    ranks = {"finetune.lora.r": cfg.lora.r, "finetune.svd_diag.r": cfg.svd_diag.r}
    for key, users in RANKED.items():
        using = [s for s in users if s in chosen]
        if using and ranks[key] > min(sizes):
            layer = f"body.layer{sizes.index(min(sizes)) + 1}.0"
            raise ValueError(
                f"{key} = {ranks[key]}: larger than the {min(sizes)} outputs of {layer} (model.hidden_sizes = "
                f"{sizes}); {', '.join(using)} need a rank at most each adapted layer's smaller dimension"
            )
