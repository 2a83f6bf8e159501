"""The ``compress`` params section: which compressions of the teacher to run, and how they must fit the backbone."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field, field_validator

from pipeline.config.schema import SharedParams, StageSection

Sparsity = Annotated[float, Field(ge=0, lt=1)]


class CompressConfig(StageSection):
    """Compressions of distill's teacher, one run each, beside the uncompressed ``reference``."""

    # global magnitude pruning: the share of the linear/conv weights set to zero, each followed by a short
    # fine-tune (this section's trainer options) with the zeros held
    sparsities: list[Sparsity] = Field(default_factory=lambda: [0.5, 0.7, 0.8, 0.9])
    # post-training dynamic int8 quantisation of the linear layers (runs on the CPU); null: when the backbone keeps
    # its weights in linear layers (mlp), true: always (refused for the others), false: never
    int8: Optional[bool] = None
    fp16: bool = True  # half-precision weights and activations

    @field_validator("sparsities")
    @classmethod
    def _distinct(cls, sparsities: list[float]) -> list[float]:
        repeated = sorted({s for s in sparsities if sparsities.count(s) > 1})
        if repeated:
            raise ValueError(f"each sparsity at most once; repeated: {', '.join(map(str, repeated))}")
        return sparsities

    def int8_for(self, backbone: str) -> bool:
        """Whether the int8 variant runs for ``backbone``."""
        return self.int8 if self.int8 is not None else backbone == "mlp"


def prune_variant(sparsity: float) -> str:
    return f"prune-{sparsity:g}"


def check_compress(params: SharedParams) -> None:
    if params.compress.int8 is True and params.model.backbone != "mlp":
        raise ValueError(
            f"compress.int8 = true: dynamic int8 quantisation covers linear layers only, and the "
            f"{params.model.backbone} backbone keeps its weights in convolutions (only its head is linear); set "
            "compress.int8 to null or false, or use model.backbone 'mlp'"
        )
