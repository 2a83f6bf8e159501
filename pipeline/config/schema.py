"""Typed schema of params.yaml.

Every section forbids unknown keys, so a typo stops the stage instead of being ignored.
Shared sections (``seed``, ``data``, ``model``, ``trainer``, ``tracking``) come first, then
one section per stage. A stage section may carry ``trainer:`` overrides of the shared
trainer options; :meth:`Params.trainer_for` merges them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataConfig(Section):
    source: Literal["digits", "npz", "csv"] = "digits"
    path: Optional[Path] = None
    label_column: str = "label"
    scale: Literal["max", "none"] = "max"
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _path_for_files(self) -> "DataConfig":
        if self.source != "digits" and self.path is None:
            raise ValueError(f"data.source '{self.source}' needs data.path (the {self.source} file to read)")
        return self


class ModelConfig(Section):
    backbone: Literal["mlp", "cnn"] = "mlp"
    hidden_sizes: list[int] = Field(default_factory=lambda: [128, 128], min_length=1)
    channels: list[int] = Field(default_factory=lambda: [16, 32], min_length=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    batch_norm: bool = True

    @field_validator("hidden_sizes", "channels")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if any(s < 1 for s in sizes):
            raise ValueError("every size must be a positive integer")
        return sizes


Precision = Literal["32", "16-mixed", "bf16-mixed"]


def _int_as_text(value: Any) -> Any:
    """YAML reads ``precision: 32`` as an int; the schema speaks of it as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TrainerConfig(Section):
    max_epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    accumulate_grad_batches: int = Field(1, ge=1)
    precision: Precision = "32"
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: Union[Literal["auto"], int, list[int]] = "auto"
    early_stopping_patience: Optional[int] = Field(5, ge=1)
    num_workers: int = Field(0, ge=0)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return _int_as_text(value)


class TrackingConfig(Section):
    experiment: str = Field("paradigm-lab", min_length=1)
    tracking_uri: str = Field("sqlite:///mlflow.db", min_length=1)


class FederatedSplitConfig(Section):
    num_clients: int = Field(10, ge=2)
    dirichlet_alpha: float = Field(0.5, gt=0)
    min_samples_per_client: int = Field(2, ge=1)


class ActiveLearningSplitConfig(Section):
    initial_labelled: int = Field(20, ge=1)


class PrepareConfig(Section):
    target_kind: Literal["domain_shift", "new_classes"] = "domain_shift"
    shots_per_class: int = Field(10, ge=1)
    target_val_per_class: int = Field(5, ge=1)
    source_fraction: float = Field(0.5, gt=0, lt=1)
    noise_std: float = Field(0.3, ge=0)
    source_classes: Optional[list[int]] = None
    federated: FederatedSplitConfig = Field(default_factory=FederatedSplitConfig)
    active_learning: ActiveLearningSplitConfig = Field(default_factory=ActiveLearningSplitConfig)


class TrainerOverrides(Section):
    """Per-stage overrides: the same keys as ``trainer``, each optional (a test keeps them in step)."""

    max_epochs: Optional[int] = Field(None, ge=1)
    batch_size: Optional[int] = Field(None, ge=1)
    optimizer: Optional[Literal["sgd", "adam", "adamw"]] = None
    lr: Optional[float] = Field(None, gt=0, le=10)
    momentum: Optional[float] = Field(None, ge=0, lt=1)
    weight_decay: Optional[float] = Field(None, ge=0)
    accumulate_grad_batches: Optional[int] = Field(None, ge=1)
    precision: Optional[Precision] = None
    accelerator: Optional[Literal["auto", "cpu", "gpu", "cuda", "mps"]] = None
    devices: Optional[Union[Literal["auto"], int, list[int]]] = None
    early_stopping_patience: Optional[int] = Field(None, ge=1)
    num_workers: Optional[int] = Field(None, ge=0)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return _int_as_text(value)


class PretrainConfig(Section):
    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)


class Params(Section):
    seed: int = Field(42, ge=0)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    def trainer_for(self, stage: str) -> TrainerConfig:
        """The shared trainer options with the stage's ``trainer:`` overrides applied."""
        overrides = getattr(self, stage).trainer.model_dump(exclude_none=True)
        return self.trainer.model_copy(update=overrides)
