"""Typed schema of params.yaml's shared sections, and the base of every paradigm's own section.

Every section forbids unknown keys, so a typo stops the stage instead of being ignored.
The shared sections (``seed``, ``repeats``, ``data``, ``model``, ``trainer``, ``tracking``, ``deployment``, ``prepare``,
``compare``, ``sweep``) are here; each paradigm's section lives with its code
(``pipeline/paradigms/<stage>/config.py``) and :mod:`pipeline.params` puts them together.
A paradigm's section may carry ``trainer:`` overrides of the shared trainer options
(:class:`StageSection`); :meth:`SharedParams.trainer_for` merges them.
"""

from __future__ import annotations

import typing
import warnings
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)


class Section(BaseModel):
    # allow_inf_nan: YAML's .inf and .nan read as floats, which no param means and which would fail (or train on
    # nothing) later; refused in every float of every section, inside lists and mappings too
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


def once_each(values: list[str], what: str) -> list[str]:
    """``values`` unchanged, or a validation error naming the ones that repeat."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"each {what} at most once; repeated: {', '.join(repeated)}")
    return values


def refuse_trainer_keys(keys: tuple[str, ...], stage: str, why: str) -> Any:
    """A validator of a stage section's ``trainer:`` overrides that refuses ``keys``, which the stage's own params
    replace (``why`` says which); assign it in the section's class body."""

    def refuse(cls, trainer: BaseModel) -> BaseModel:
        for key in keys:
            if getattr(trainer, key) is not None:
                raise ValueError(f"{key} = {getattr(trainer, key)} is not a {stage} trainer option: {why}")
        return trainer

    return field_validator("trainer")(classmethod(refuse))


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
    scale: Literal["max", "standard", "none"] = "max"  # fitted on the source training split (pipeline.data.scaling)
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    # csv columns / npz arrays of extra labels, kept out of the features
    task_columns: list[str] = Field(default_factory=list)

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
                raise ValueError(
                    f"data.{key} = {getattr(self, key)}: applies to data.source image_folder only, not '{self.source}'"
                )
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
    # mlp: any example shape, flattened; cnn1d: signals (L) or (C, L); cnn, resnet: images (H, W) or (C, H, W)
    backbone: Literal["mlp", "cnn1d", "cnn", "resnet"] = "mlp"
    hidden_sizes: list[int] = Field(default_factory=lambda: [128, 128], min_length=1)
    channels: list[int] = Field(default_factory=lambda: [16, 32], min_length=1)  # cnn(1d): conv layers; resnet: stages
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
        return len(self.hidden_sizes if self.backbone == "mlp" else self.channels) + 1  # mlp, cnn, cnn1d: + the head


def _int_as_text(value: Any) -> Any:
    """YAML reads ``precision: 32`` as an int; the schema speaks of it as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Precision = Annotated[Literal["32", "16-mixed", "bf16-mixed"], BeforeValidator(_int_as_text)]
# Strategies that run the stage script in every process (Lightning's own launcher, torchrun or SLURM), so
# each process builds the same models in the same order; ddp_spawn and friends would lose the callbacks' state.
DistributedStrategy = Literal["auto", "ddp", "ddp_find_unused_parameters_true"]


def _usable_devices(devices: Any) -> Any:
    """Lightning takes a count below 1, an empty list or a negative id here, then fails deep in its set-up."""
    if isinstance(devices, int):
        usable = devices >= 1
    else:
        usable = devices == "auto" or (len(devices) > 0 and min(devices) >= 0)
    if not usable:
        raise ValueError("must be 'auto', a count of at least 1, or a non-empty list of device ids (each 0 or more)")
    return devices


Devices = Annotated[Union[Literal["auto"], int, list[int]], AfterValidator(_usable_devices)]


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
    devices: Devices = "auto"
    strategy: DistributedStrategy = "auto"  # ddp: one process per device (centralised stages); batch_size is per device
    num_nodes: int = Field(1, ge=1)
    early_stopping_patience: Optional[int] = Field(5, ge=1)
    num_workers: int = Field(0, ge=0)
    # torch's CPU threads in a stage's process: 1 by default, measured faster on a busy machine and as fast on an
    # idle one for the default models, and the same results on any machine; "all": one per core (torch's own
    # default). Results are reproducible at a fixed count only (docs/benchmarks.md, thread policy)
    num_threads: Union[Literal["all"], Annotated[int, Field(ge=1)]] = 1


def _each_optional(model: type[Section], name: str, doc: str) -> type[Section]:
    """``model``'s fields, each optional (None: not set) with its own type and bounds: overrides of it."""
    fields: dict[str, Any] = {}
    for key, field in model.model_fields.items():
        kind = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        fields[key] = (Optional[kind], None)
    return create_model(name, __base__=Section, __doc__=doc, **fields)


TrainerOverrides = _each_optional(
    TrainerConfig,
    "TrainerOverrides",
    "A stage's overrides of the shared trainer options: the same keys, each optional.",
)


with warnings.catch_warnings():  # `register` shadows ABCMeta.register, a class method no params object calls
    warnings.filterwarnings("ignore", message='Field name "register"')

    class TrackingConfig(Section):
        experiment: str = Field("paradigm-lab", min_length=1)
        tracking_uri: str = Field("sqlite:///mlflow.db", min_length=1)
        register: bool = True  # compare registers each question's winner in the Model Registry (alias champion)
        system_metrics: bool = True  # MLflow's monitor (CPU, memory, GPU) on every training run: 3 % of the pipeline


class DeploymentConfig(Section):
    """How every training run times its saved model's inference (:mod:`pipeline.deployment.inference`)."""

    warmup_calls: int = Field(10, ge=0)  # untimed batch-1 calls first (caches, lazy initialisation)
    timed_calls: int = Field(100, ge=1)  # batch-1 calls timed: latency median and p95
    throughput_batch: int = Field(1024, ge=1)  # examples per call when timing throughput
    throughput_calls: int = Field(10, ge=1)


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
    # absolute: noise_std in input units (after data.scale); source_std: in standard deviations of each feature
    noise_unit: Literal["absolute", "source_std"] = "absolute"
    source_classes: Optional[list[int]] = None
    federated: FederatedSplitConfig = Field(default_factory=FederatedSplitConfig)
    active_learning: ActiveLearningSplitConfig = Field(default_factory=ActiveLearningSplitConfig)


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
    # dotted keys set in every trial, e.g. finetune.strategies: [lora]
    fixed: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metric")
    @classmethod
    def _not_test(cls, metric: Optional[str]) -> Optional[str]:
        if metric is not None and not metric.startswith("val/"):
            raise ValueError(
                f"'{metric}': a sweep selects on validation metrics only (val/...), never on the test split"
            )
        return metric


class CompareConfig(Section):
    """The comparison stage: every paradigm's runs side by side, read back from MLflow."""

    # estimated vs measured model state: largest relative gap that passes
    memory_tolerance: float = Field(0.15, gt=0, lt=1)
    # predicted vs measured activation bytes of one training step: largest relative gap that passes
    activation_tolerance: float = Field(0.15, gt=0, lt=1)
    # the MLflow UI the report links runs to; null: the tracking server, or http://127.0.0.1:5000
    ui_url: Optional[str] = None


class StageSection(Section):
    """A paradigm's params section: its own keys, and ``trainer:`` overrides of the shared trainer options."""

    trainer: TrainerOverrides = Field(default_factory=TrainerOverrides)


# numpy and Lightning take seeds up to 2**32 - 1; half of that leaves room for the seeds derived by adding to it
# (seed + 1 ... for repeats, seed + a process id for a sweep's extra workers)
MAX_SEED = 2**31 - 1


class SharedParams(Section):
    """The sections every stage shares; :func:`pipeline.params.params_model` adds one per paradigm.

    Code below the registry (the paradigms, tracking, data) names its params by this class: the object it gets is
    the whole file's model, a subclass, so a paradigm finds its own section on it (``params.<stage>``)."""

    # each registered paradigm's rules across sections (``checks(params)`` raises ValueError), set by params_model
    cross_checks: ClassVar[tuple[Callable[[Any], None], ...]] = ()

    seed: int = Field(42, ge=0, le=MAX_SEED)
    # training stages run every variant with seeds seed, seed+1, ...; compare reports mean ± std
    repeats: int = Field(1, ge=1)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)

    @model_validator(mode="after")
    def _last_seed_in_range(self) -> "SharedParams":
        """The repeats' seeds stay within MAX_SEED too."""
        last = self.seed + self.repeats - 1
        if last > MAX_SEED:
            raise ValueError(
                f"seed = {self.seed} with repeats = {self.repeats}: the last run's seed, seed + repeats - 1 = {last}, "
                f"must be at most {MAX_SEED}; lower seed or repeats"
            )
        return self

    @model_validator(mode="after")
    def _sections_fit_each_other(self) -> "SharedParams":
        """Each paradigm's rules across sections (e.g. its layer counts against the backbone's depth), before any stage
        runs."""
        for check in self.cross_checks:
            check(self)
        return self

    def trainer_for(self, stage: str) -> TrainerConfig:
        """The shared trainer options with the stage's ``trainer:`` overrides applied."""
        overrides = getattr(self, stage).trainer.model_dump(exclude_none=True)
        return self.trainer.model_copy(update=overrides)
