"""Typed schema of params.yaml.

Every section forbids unknown keys, so a typo stops the stage instead of being ignored.
Shared sections (``seed``, ``repeats``, ``data``, ``model``, ``trainer``, ``tracking``) come first, then
one section per stage. A stage section may carry ``trainer:`` overrides of the shared
trainer options; :meth:`Params.trainer_for` merges them.
"""

from __future__ import annotations

import math
import re
import typing
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def once_each(values: list[str], what: str) -> list[str]:
    """``values`` unchanged, or a validation error naming the ones that repeat."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"each {what} at most once; repeated: {', '.join(repeated)}")
    return values


def refuse_trainer_keys(trainer: "TrainerOverrides", keys: tuple[str, ...], stage: str, why: str) -> "TrainerOverrides":
    """``trainer`` unchanged, or an error when it sets one of ``keys``, which the stage's own params replace."""
    for key in keys:
        if getattr(trainer, key) is not None:
            raise ValueError(f"{key} = {getattr(trainer, key)} is not a {stage} trainer option: {why}")
    return trainer


TorchvisionName = Literal["mnist", "fashion_mnist", "cifar10"]  # pipeline.data.images reads each
DEFAULT_DOWNLOADS = Path("data/downloads")


class DataConfig(Section):
    source: Literal["digits", "npz", "csv", "image_folder", "torchvision"] = "digits"
    path: Optional[Path] = None  # npz/csv: the file; image_folder: the root folder; torchvision: where it downloads
    name: Optional[TorchvisionName] = None  # torchvision: which dataset
    download: bool = True  # torchvision: fetch the dataset into data.path when it is not there
    image_size: Optional[tuple[int, int]] = None  # image_folder: resize every image to [height, width]
    channels: Optional[Literal[1, 3]] = None  # image_folder: 1 grey, 3 colour; null: colour if any image has it
    label_column: str = "label"
    scale: Literal["max", "none"] = "max"
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    task_columns: list[str] = Field(default_factory=list)  # csv columns / npz arrays of extra labels, kept out of the features

    @field_validator("image_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _path_for_files(self) -> "DataConfig":
        if self.source in ("npz", "csv", "image_folder") and self.path is None:
            what = "image folder (one sub-folder per class)" if self.source == "image_folder" else f"{self.source} file"
            raise ValueError(f"data.source '{self.source}' needs data.path (the {what} to read)")
        if (self.source == "torchvision") != (self.name is not None):
            raise ValueError(
                f"data.name = {self.name!r} with data.source '{self.source}': data.source torchvision needs data.name "
                f"(one of {', '.join(typing.get_args(TorchvisionName))}), and only it reads data.name"
            )
        for key in ("image_size", "channels"):
            if getattr(self, key) is not None and self.source != "image_folder":
                raise ValueError(f"data.{key} = {getattr(self, key)}: applies to data.source image_folder only, not '{self.source}'")
        if self.image_size is not None and min(self.image_size) < 1:
            raise ValueError(f"data.image_size = {list(self.image_size)}: height and width must be positive")
        if self.source not in ("npz", "csv") and self.task_columns:
            raise ValueError(
                f"data.task_columns = {self.task_columns}: the {self.source} source has no extra label columns; "
                "they come from a csv or npz file (data.source csv or npz)"
            )
        if self.label_column in self.task_columns:
            raise ValueError(
                f"data.task_columns = {self.task_columns}: '{self.label_column}' is data.label_column, the main label; "
                "a task uses it with label 'class'"
            )
        return self

    @field_validator("task_columns")
    @classmethod
    def _distinct_columns(cls, columns: list[str]) -> list[str]:
        return once_each(columns, "column")


class ModelConfig(Section):
    backbone: Literal["mlp", "cnn", "resnet"] = "mlp"
    hidden_sizes: list[int] = Field(default_factory=lambda: [128, 128], min_length=1)
    channels: list[int] = Field(default_factory=lambda: [16, 32], min_length=1)  # cnn: conv layers; resnet: stages
    blocks_per_stage: int = Field(2, ge=1)  # resnet: residual blocks in each stage
    dropout: float = Field(0.1, ge=0, lt=1)
    batch_norm: bool = True

    @field_validator("hidden_sizes", "channels")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if any(s < 1 for s in sizes):
            raise ValueError("every size must be a positive integer")
        return sizes

    @property
    def depth(self) -> int:
        """Layers with weights, the head included: what ``replace_layers`` and ``unfreeze_layers`` count."""
        if self.backbone == "resnet":
            return len(self.channels) + 2  # the stem, the stages, the head
        return len(self.hidden_sizes if self.backbone == "mlp" else self.channels) + 1


Precision = Literal["32", "16-mixed", "bf16-mixed"]
# Strategies that run the stage script in every process (Lightning's own launcher, torchrun or SLURM), so
# each process builds the same models in the same order; ddp_spawn and friends would lose the callbacks' state.
DistributedStrategy = Literal["auto", "ddp", "ddp_find_unused_parameters_true"]


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
    strategy: DistributedStrategy = "auto"  # ddp: one process per device (centralised stages); batch_size is per device
    num_nodes: int = Field(1, ge=1)
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
    shards_per_client: int = Field(2, ge=1)  # shards partition: label-sorted shards per client (McMahan et al. 2017)


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
    strategy: Optional[DistributedStrategy] = None
    num_nodes: Optional[int] = Field(None, ge=1)
    early_stopping_patience: Optional[int] = Field(None, ge=1)
    num_workers: Optional[int] = Field(None, ge=0)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return _int_as_text(value)


class PretrainConfig(Section):
    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)


class TransferConfig(Section):
    """New top layers on a frozen pretrained body."""

    replace_layers: int = Field(1, ge=1)  # counted from the top: 1 = the head only
    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)


Strategy = Literal["full", "partial", "lora", "lora_fa", "vera"]
LINEAR_ONLY = ("lora_fa", "vera")  # VeRA, and peft's LoRA-FA optimizer (A A^T of a 2-D A), adapt linear layers only
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)


class LoraSettings(Section):
    """LoRA and LoRA-FA: W + (alpha / r) · B·A on the body's linear and convolution layers."""

    r: int = Field(2, ge=1)
    alpha: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class VeraSettings(Section):
    """VeRA: shared frozen random A, B; per layer trainable scaling vectors d (size r) and b (layer width)."""

    r: int = Field(256, ge=1)
    d_initial: float = Field(0.1, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class FinetuneConfig(Section):
    strategies: Optional[list[Strategy]] = Field(None, min_length=1)  # None: every strategy the backbone supports
    body_lr_factor: float = Field(1.0, gt=0, le=1)  # full, partial: the body's lr is trainer.lr × this
    unfreeze_layers: int = Field(2, ge=1)  # partial: the top N layers train (the head is one)
    unfreeze_every: Optional[int] = Field(None, ge=1)  # partial: gradual unfreezing, one more layer every N epochs
    lora: LoraSettings = Field(default_factory=LoraSettings)
    vera: VeraSettings = Field(default_factory=VeraSettings)
    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)

    @field_validator("strategies")
    @classmethod
    def _once_each(cls, strategies: Optional[list[str]]) -> Optional[list[str]]:
        return strategies if strategies is None else once_each(strategies, "strategy")


class ScratchConfig(Section):
    """The control: the same architecture from random initialisation on the same target data."""

    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)


TaskLabel = Literal["class", "parity", "threshold", "column"]
TASK_NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"  # it names metrics (test/<name>/acc) and files


class TaskSpec(Section):
    """One task of the multi-task model: what it predicts, how much its loss counts, its own layers.

    ``label``: ``class`` (the dataset's label), ``parity`` (integer label even/odd),
    ``threshold`` (label >= ``threshold``) or ``column`` (a column named in ``data.task_columns``).
    The output layer's size is the number of distinct labels the definition gives.
    """

    name: str
    label: TaskLabel
    threshold: Optional[float] = None
    column: Optional[str] = None
    weight: float = Field(1.0, gt=0)  # fixed: the loss weight; uncertainty: the starting weight
    tower: list[int] = Field(default_factory=list)  # hidden sizes of the task's own layers before its output layer

    @field_validator("name")
    @classmethod
    def _usable_name(cls, name: str) -> str:
        if not re.fullmatch(TASK_NAME, name):
            raise ValueError("a task name starts with a letter and holds only letters, digits, _ and - (it names metrics and files)")
        return name

    @field_validator("tower")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        return ModelConfig._positive(sizes)

    @model_validator(mode="after")
    def _label_needs(self) -> "TaskSpec":
        for field, kind, example in (("threshold", "threshold", "e.g. 5: labels >= 5 are class 1"), ("column", "column", "e.g. the column's name")):
            given = getattr(self, field) is not None
            if self.label == kind and not given:
                raise ValueError(f"task '{self.name}': label '{kind}' needs {field} ({example})")
            if given and self.label != kind:
                raise ValueError(f"task '{self.name}': {field} applies only to label '{kind}', but label is '{self.label}'")
        return self


def _default_tasks() -> list[TaskSpec]:
    return [TaskSpec(name="digit", label="class"), TaskSpec(name="parity", label="parity")]


class MultitaskConfig(Section):
    """One shared body with a branch per task, against one separate model per task."""

    tasks: list[TaskSpec] = Field(default_factory=_default_tasks)
    weighting: Literal["fixed", "uncertainty"] = "uncertainty"
    init_from_base: bool = False  # start the shared body (and every separate body) from pretrain's base
    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)

    @field_validator("tasks")
    @classmethod
    def _distinct_names(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        if len(tasks) < 2:
            raise ValueError(f"multi-task learning needs at least 2 tasks, got {len(tasks)}")
        once_each([t.name for t in tasks], "task name")
        return tasks


Partition = Literal["iid", "dirichlet", "shards"]
FederatedStrategy = Literal["fedavg", "fedprox", "fedadam", "fedavgm"]
Compression = Literal["none", "fp16", "int8", "topk"]


class FedProxSettings(Section):
    """FedProx (Li et al. 2020): each client adds (mu / 2) ||w - w_global||^2 to its loss."""

    mu: float = Field(1.0, ge=0)


class FedAdamSettings(Section):
    """FedAdam (Reddi et al. 2021): the server applies Adam to the mean client change."""

    lr: float = Field(0.01, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    tau: float = Field(1e-3, gt=0)  # adaptivity: added to sqrt(v)


class FedAvgMSettings(Section):
    """FedAvgM (Hsu et al. 2019): server momentum over the mean client change."""

    lr: float = Field(1.0, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)


class DifferentialPrivacySettings(Section):
    """DP-FedAvg (McMahan et al. 2018): clipped client changes, Gaussian noise, an (epsilon, delta) accountant."""

    enabled: bool = False
    clip_norm: float = Field(1.0, gt=0)  # largest L2 norm of one client's change
    noise_multiplier: float = Field(1.0, gt=0)  # noise std over clip_norm (clipping alone gives no guarantee)
    delta: float = Field(1e-5, gt=0, lt=1)  # epsilon is reported at this delta


class FederatedConfig(Section):
    """Simulated clients train locally; only model updates reach the server."""

    partitions: list[Partition] = Field(default_factory=lambda: ["iid", "dirichlet", "shards"], min_length=1)
    strategies: list[FederatedStrategy] = Field(default_factory=lambda: ["fedavg", "fedprox", "fedadam"], min_length=1)
    rounds: int = Field(30, ge=1)
    client_fraction: float = Field(0.5, gt=0, le=1)
    local_epochs: int = Field(1, ge=1)
    local_batch_size: int = Field(32, ge=1)
    client_dropout: float = Field(0.0, ge=0, le=1)  # probability that a sampled client never reports back
    compression: Compression = "none"
    topk_fraction: float = Field(0.1, gt=0, le=1)  # topk: the share of update entries sent
    error_feedback: bool = True  # lossy compression: a client adds what its last update lost to its next one
    fedprox: FedProxSettings = Field(default_factory=FedProxSettings)
    fedadam: FedAdamSettings = Field(default_factory=FedAdamSettings)
    fedavgm: FedAvgMSettings = Field(default_factory=FedAvgMSettings)
    dp: DifferentialPrivacySettings = Field(default_factory=DifferentialPrivacySettings)
    personalization_steps: int = Field(10, ge=0)  # local fine-tuning steps per client after training; 0 = none
    init_from_base: bool = False
    centralized: bool = True  # also train the centralised baseline on the pooled data
    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)

    @field_validator("partitions", "strategies")
    @classmethod
    def _once_each(cls, values: list[str]) -> list[str]:
        return once_each(values, "entry")

    @field_validator("trainer")
    @classmethod
    def _budget_from_rounds(cls, trainer: TrainerOverrides) -> TrainerOverrides:
        return refuse_trainer_keys(trainer, ("max_epochs", "batch_size"), "federated",
            "the clients train local_epochs per round at local_batch_size, and the centralised baseline gets the same budget; "
            "set federated.rounds, local_epochs or local_batch_size")

    def epoch_budget(self) -> int:
        """Passes over the pooled data the federated clients make together: the centralised baseline's epochs."""
        return max(1, math.ceil(self.rounds * self.client_fraction * self.local_epochs))


QueryStrategy = Literal["random", "least_confidence", "margin", "entropy", "bald"]
QUERY_STRATEGIES: tuple[str, ...] = typing.get_args(QueryStrategy)
CONTROL = "random"  # the strategy every other is compared with


class ActiveLearningConfig(Section):
    """Rounds of: train on the labelled set, score the unlabelled pool, have the top ``query_size`` labelled."""

    strategies: list[QueryStrategy] = Field(default_factory=lambda: list(QUERY_STRATEGIES), min_length=1)
    query_size: int = Field(20, ge=1)  # examples labelled per round
    rounds: int = Field(15, ge=1)  # queries; the learning curve has rounds + 1 points
    label_budget: Optional[int] = Field(None, ge=1)  # stop once this many examples (seed set included) are labelled
    train_steps: int = Field(300, ge=1)  # gradient steps per round on the labelled set
    warm_start: bool = False  # false: each round retrains from the same start; true: from the last round's weights
    init_from_base: bool = False  # true: start from pretrain's base (new head) instead of random weights
    pool_subsample: Optional[int] = Field(None, ge=1)  # score only this many random pool examples per round (speed)
    mc_samples: int = Field(20, ge=2)  # bald: stochastic forward passes with dropout on
    cooperative: bool = False  # CEAL: also train each round on confident pool predictions as pseudo-labels
    pseudo_label_threshold: float = Field(0.99, gt=0, lt=1)  # cooperative: least predicted probability of a pseudo-label
    target_accuracy: Optional[float] = Field(None, gt=0, le=1)  # al/labels_to_target; null: random's final test accuracy
    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)

    @field_validator("strategies")
    @classmethod
    def _control_first(cls, values: list[str]) -> list[str]:
        """Every strategy once; ``random`` always runs, first: the others are measured against it."""
        once_each(values, "strategy")
        return [CONTROL] + [v for v in values if v != CONTROL]

    @field_validator("trainer")
    @classmethod
    def _steps_not_epochs(cls, trainer: TrainerOverrides) -> TrainerOverrides:
        return refuse_trainer_keys(trainer, ("max_epochs", "early_stopping_patience"), "active_learning",
            "each round trains active_learning.train_steps steps on the labelled set (no validation labels are spent on "
            "early stopping); set active_learning.train_steps")


class SearchDimension(Section):
    """One swept param: ``float`` (``log`` for a log-uniform draw), ``int`` or ``categorical``."""

    type: Literal["float", "int", "categorical"]
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None  # float/int: draw on a grid of this step
    choices: Optional[list[Any]] = None

    @model_validator(mode="after")
    def _complete(self) -> "SearchDimension":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type} needs low < high (got low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self


class StageSweep(Section):
    """The sweep of one stage: what to search (dotted params keys), what to optimise, what to hold fixed."""

    space: dict[str, SearchDimension] = Field(min_length=1)
    metric: Optional[str] = None  # a validation metric of the stage's runs; None: the stage's default
    direction: Literal["minimize", "maximize"] = "minimize"
    fixed: dict[str, Any] = Field(default_factory=dict)  # dotted keys set in every trial, e.g. finetune.strategies: [lora]

    @field_validator("metric")
    @classmethod
    def _not_test(cls, metric: Optional[str]) -> Optional[str]:
        if metric is not None and not metric.startswith("val/"):
            raise ValueError(f"'{metric}': a sweep selects on validation metrics only (val/...), never on the test split")
        return metric


class CompareConfig(Section):
    """The comparison stage: every paradigm's runs side by side, read back from MLflow."""

    memory_tolerance: float = Field(0.15, gt=0, lt=1)  # estimated vs measured model state: largest relative gap that passes
    ui_url: Optional[str] = None  # the MLflow UI the report links runs to; null: the tracking server, or http://127.0.0.1:5000


class Params(Section):
    seed: int = Field(42, ge=0)
    repeats: int = Field(1, ge=1)  # training stages run every variant with seeds seed, seed+1, ...; compare reports mean ± std
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    scratch: ScratchConfig = Field(default_factory=ScratchConfig)
    multitask: MultitaskConfig = Field(default_factory=MultitaskConfig)
    federated: FederatedConfig = Field(default_factory=FederatedConfig)
    active_learning: ActiveLearningConfig = Field(default_factory=ActiveLearningConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    sweep: dict[str, StageSweep] = Field(default_factory=dict)  # per stage; run with python -m pipeline.sweep <stage>

    @model_validator(mode="after")
    def _fits_the_model(self) -> "Params":
        """Rules across sections, checked before any stage runs."""
        depth, backbone = self.model.depth, self.model.backbone
        if self.transfer.replace_layers >= depth:
            raise ValueError(
                f"transfer.replace_layers = {self.transfer.replace_layers}: the {backbone} backbone has {depth} layers "
                f"(head included) and at least one must stay frozen (replacing all is the scratch stage); allowed 1..{depth - 1}"
            )
        if self.finetune.unfreeze_layers > depth:
            raise ValueError(
                f"finetune.unfreeze_layers = {self.finetune.unfreeze_layers}: the {backbone} backbone has {depth} layers "
                f"(head included); allowed 1..{depth}"
            )
        linear_only = [s for s in self.finetune.strategies or [] if s in LINEAR_ONLY and backbone != "mlp"]
        if linear_only:
            raise ValueError(
                f"finetune.strategies includes {', '.join(map(repr, linear_only))}, which adapt only linear layers "
                f"(VeRA; LoRA-FA's optimizer), and the {backbone} backbone's body has none; remove them from "
                "finetune.strategies or use model.backbone 'mlp'"
            )
        for i, task in enumerate(self.multitask.tasks):
            if task.column is not None and task.column not in self.data.task_columns:
                raise ValueError(
                    f"multitask.tasks[{i}].column = '{task.column}' (task '{task.name}'): not a declared label column; "
                    f"data.task_columns is {self.data.task_columns}: add it there so prepare keeps it out of the features"
                )
        split = self.prepare.federated
        if self.model.batch_norm and split.min_samples_per_client < 2:
            raise ValueError(
                f"prepare.federated.min_samples_per_client = {split.min_samples_per_client}: with model.batch_norm true a client "
                "needs at least 2 examples (batch normalisation cannot train on one); allowed >= 2"
            )
        al = self.active_learning
        if "bald" in al.strategies and self.model.dropout == 0:
            raise ValueError(
                "active_learning.strategies includes 'bald', which samples predictions with dropout on, but model.dropout = 0; "
                "set model.dropout > 0 (e.g. 0.1) or remove 'bald'"
            )
        seed_size = self.prepare.active_learning.initial_labelled
        if al.label_budget is not None and al.label_budget <= seed_size:
            raise ValueError(
                f"active_learning.label_budget = {al.label_budget}: the seed set already has "
                f"prepare.active_learning.initial_labelled = {seed_size} labels; allowed > {seed_size}"
            )
        return self

    def finetune_strategies(self) -> list[str]:
        """``finetune.strategies``, or when it is null every strategy the backbone supports (LoRA-FA, VeRA: mlp only)."""
        if self.finetune.strategies is not None:
            return list(self.finetune.strategies)
        return [s for s in STRATEGIES if not (s in LINEAR_ONLY and self.model.backbone != "mlp")]

    def trainer_for(self, stage: str) -> TrainerConfig:
        """The shared trainer options with the stage's ``trainer:`` overrides applied."""
        overrides = getattr(self, stage).trainer.model_dump(exclude_none=True)
        return self.trainer.model_copy(update=overrides)
