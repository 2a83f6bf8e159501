"""The ``pretrain`` params section: only ``trainer:`` overrides."""

from __future__ import annotations

from pipeline.config.schema import StageSection


class PretrainConfig(StageSection):
    """The base model on the abundant source task."""
