"""The ``scratch`` params section: only ``trainer:`` overrides (keep them equal to transfer's and finetune's)."""

from __future__ import annotations

from pipeline.config.schema import StageSection


class ScratchConfig(StageSection):
    """The control: the same architecture from random initialisation on the same target data."""
