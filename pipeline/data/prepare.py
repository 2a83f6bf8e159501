"""Build every prepared dataset from the raw one: the logic of the ``prepare`` stage.

Transfer tasks, two kinds of target:

- ``new_classes``: the source task has some classes (default the first half), the
  target task the others, with few labels each;
- ``domain_shift``: both have all classes; the data is halved per class and the target
  half gets additive Gaussian noise (``noise_std``), so the same task looks different.

The ``full`` task (all data, all classes) keeps the source task's training and validation
examples out of its test split: a model that starts from the base is never tested on what
the base learned from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.config.schema import PrepareConfig, SharedParams
from pipeline.data.baselines import fit_baselines
from pipeline.data.prepared import SPLITS, TaskData, save_task
from pipeline.data.scaling import SCALING_FILE, Scaling, fit_scaling
from pipeline.data.sources import Dataset, load_dataset
from pipeline.data.splits import (
    client_class_counts,
    label_skew,
    partition_dirichlet,
    partition_iid,
    partition_shards,
    split_fraction,
    split_train_val_test,
    take_per_class,
)
from pipeline.errors import ConfigError
from pipeline.io import write_npz
from pipeline.seeding import rng_for

NOISE_WARNING_RATIO = 1.0  # domain-shift noise above this many source standard deviations draws a warning


@dataclass
class PreparedData:
    dataset: Dataset  # scaled
    scaling: Scaling
    source: TaskData
    target: TaskData
    full: TaskData
    partitions: dict[str, np.ndarray]  # scheme -> client id of each full-train example
    labelled: np.ndarray  # active learning seed set: positions in full's train split
    pool: np.ndarray

    def summary(self) -> dict:
        """Split sizes, class counts and partition statistics, for logs and metrics."""
        y_train = self.full.y["train"]
        out: dict = {
            "dataset": self.dataset.name,
            "examples": len(self.dataset.y),
            "classes": len(self.dataset.classes),
        }
        for name in ("source", "target", "full"):
            task: TaskData = getattr(self, name)
            out[name] = {
                "sizes": {s: len(task.y[s]) for s in SPLITS},
                "class_counts": task.class_counts(),
                "baselines": task.baselines,
                "notes": list(task.notes),
            }
        out["federated"] = {
            scheme: {
                "client_sizes": np.bincount(clients).tolist(),
                "client_class_counts": client_class_counts(clients, y_train, self.full.num_classes).tolist(),
                "label_skew": round(label_skew(clients, y_train), 6),
            }
            for scheme, clients in self.partitions.items()
        }
        out["active_learning"] = {"labelled": len(self.labelled), "pool": len(self.pool)}
        return out


def prepare_data(params: SharedParams) -> PreparedData:
    raw = load_dataset(params.data)
    where = raw.name if params.data.source == "digits" else str(params.data.path)
    source_ids, target_ids = _transfer_halves(raw, params, where)
    source_parts = _split(raw, source_ids, params, where, "source")
    scaling = fit_scaling(params.data.scale, raw.X[source_parts["train"]])  # training inputs only: no test leaks
    dataset = replace(raw, X=scaling.apply(raw.X))
    source = _gather(dataset, dataset.X, source_parts)
    target = _target_task(dataset, target_ids, dataset.X[source_parts["train"]], params, where)
    seen_by_base = np.concatenate([source.ids["train"], source.ids["val"]])
    full = _gather(dataset, dataset.X, _split(dataset, np.arange(len(dataset.y)), params, where, "full", seen_by_base))
    for task in (source, target, full):
        task.baselines = fit_baselines(task.X, task.y, task.num_classes, params.seed)
    fed = params.prepare.federated
    y_train = full.y["train"]
    partitions = {
        "iid": partition_iid(len(y_train), fed.num_clients, rng_for(params.seed, "federated/iid")),
        "dirichlet": partition_dirichlet(
            y_train,
            fed.num_clients,
            fed.dirichlet_alpha,
            fed.min_samples_per_client,
            rng_for(params.seed, "federated/dirichlet"),
        ),
        "shards": partition_shards(
            y_train, fed.num_clients, fed.shards_per_client, rng_for(params.seed, "federated/shards")
        ),
    }
    n_seed = params.prepare.active_learning.initial_labelled
    if n_seed >= len(y_train):
        raise ConfigError(
            f"prepare.active_learning.initial_labelled = {n_seed}: must be smaller than the {len(y_train)} training "
            "examples"
        )
    order = rng_for(params.seed, "active_learning/seed").permutation(len(y_train))
    return PreparedData(
        dataset, scaling, source, target, full, partitions, np.sort(order[:n_seed]), np.sort(order[n_seed:])
    )


def write_prepared(prepared: PreparedData, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    save_task(out_dir / "source.npz", prepared.source)
    save_task(out_dir / "target.npz", prepared.target)
    save_task(out_dir / "full.npz", prepared.full)
    write_npz(out_dir / "federated.npz", **prepared.partitions)
    write_npz(out_dir / "active_learning.npz", labelled=prepared.labelled, pool=prepared.pool)
    prepared.scaling.save(out_dir / SCALING_FILE)


def _transfer_halves(dataset: Dataset, params: SharedParams, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The ids of the source task and of the target task (``prepare.target_kind``)."""
    cfg = params.prepare
    all_ids = np.arange(len(dataset.y))
    if cfg.target_kind == "new_classes":
        in_source = np.isin(dataset.y, _source_class_indices(dataset, cfg.source_classes))
        return all_ids[in_source], all_ids[~in_source]
    return split_fraction(
        all_ids, dataset.y, cfg.source_fraction, rng_for(params.seed, "transfer/halves"), where, dataset.classes
    )


def _target_task(
    dataset: Dataset, ids: np.ndarray, source_train: np.ndarray, params: SharedParams, where: str
) -> TaskData:
    """The scarce target task; under ``domain_shift`` its inputs carry Gaussian noise, scaled per
    ``prepare.noise_unit`` against the source training inputs ``source_train``."""
    cfg = params.prepare
    if cfg.target_kind == "new_classes":
        return _scarce_task(dataset, dataset.X, ids, params, where)
    rng = rng_for(params.seed, "transfer/noise")
    if cfg.noise_unit == "absolute":
        noise = rng.normal(0.0, cfg.noise_std, size=dataset.X.shape)
    else:  # each feature's noise in units of its own spread on the source training inputs
        noise = rng.normal(0.0, 1.0, size=dataset.X.shape) * (cfg.noise_std * source_train.std(axis=0))
    shifted = (dataset.X + noise.astype(np.float32)).astype(np.float32)
    target = _scarce_task(dataset, shifted, ids, params, where)
    target.notes = tuple(note for note in [noise_note(cfg, float(source_train.std()), params.data.scale)] if note)
    return target


def noise_note(cfg: PrepareConfig, spread: float, scale: str) -> str | None:
    """A warning when the domain-shift noise exceeds the source inputs' spread (``spread``: their standard
    deviation, all features pooled): it buries the signal and can leave the target task meaningless."""
    relative = cfg.noise_std if cfg.noise_unit == "source_std" else cfg.noise_std / spread if spread > 0 else math.inf
    if relative <= NOISE_WARNING_RATIO:
        return None
    if cfg.noise_unit == "source_std":
        return (
            f"prepare.noise_std = {cfg.noise_std} source standard deviations: the target task's noise exceeds its "
            "signal's spread and may leave it meaningless; lower noise_std"
        )
    return (
        f"prepare.noise_std = {cfg.noise_std} is {relative:.1f}x the spread of the source inputs (std {spread:.3g} "
        f"after data.scale {scale}): the noise buries the signal and may leave the target task meaningless; set "
        "prepare.noise_unit: source_std (noise_std then counts each feature's standard deviations, e.g. 0.5) or "
        "lower noise_std"
    )


def _source_class_indices(dataset: Dataset, source_classes: list[int] | None) -> np.ndarray:
    k = len(dataset.classes)
    if source_classes is None:
        return np.arange(k // 2)
    known = {c.item() if hasattr(c, "item") else c for c in dataset.classes}
    unknown = [c for c in source_classes if c not in known]
    if unknown:
        raise ConfigError(
            f"prepare.source_classes = {source_classes}: {unknown} not among the dataset's classes {sorted(known)}"
        )
    chosen = np.nonzero(np.isin(dataset.classes, source_classes))[0]
    if len(chosen) < 2 or k - len(chosen) < 2:
        raise ConfigError(
            f"prepare.source_classes = {source_classes}: source and target each need at least 2 of the {k} classes"
        )
    return chosen


def _split(
    dataset: Dataset,
    ids: np.ndarray,
    params: SharedParams,
    where: str,
    name: str,
    not_in_test: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """A task with plenty of labels: stratified train/val/test fractions of ``ids``."""
    rng = rng_for(params.seed, f"{name}/split")
    return split_train_val_test(
        ids, dataset.y, params.data.val_fraction, params.data.test_fraction, rng, where, dataset.classes, not_in_test
    )


def _scarce_task(dataset: Dataset, X: np.ndarray, ids: np.ndarray, params: SharedParams, where: str) -> TaskData:
    """The target task: a test fraction, then ``target_val_per_class`` and ``shots_per_class`` labels per class."""
    cfg = params.prepare
    rng = rng_for(params.seed, "target/split")
    labels = np.unique(dataset.y[ids])
    test, rest = split_fraction(ids, dataset.y, params.data.test_fraction, rng, where, dataset.classes)
    val, rest = take_per_class(
        rest,
        dataset.y,
        cfg.target_val_per_class,
        rng,
        where,
        "target validation split (prepare.target_val_per_class)",
        dataset.classes,
        labels,
    )
    train, _unused = take_per_class(
        rest,
        dataset.y,
        cfg.shots_per_class,
        rng,
        where,
        "target training shots (prepare.shots_per_class)",
        dataset.classes,
        labels,
    )
    return _gather(dataset, X, {"train": train, "val": val, "test": test})


def _gather(dataset: Dataset, X: np.ndarray, parts: dict[str, np.ndarray]) -> TaskData:
    """Cut out the splits of ``X`` (the dataset's inputs, or a shifted copy), relabelling the task's classes
    ``0..K-1``."""
    y = dataset.y
    present = np.unique(np.concatenate([y[p] for p in parts.values()]))
    relabel = np.full(int(y.max()) + 1, -1, dtype=np.int64)
    relabel[present] = np.arange(len(present))
    return TaskData(
        X={s: X[p] for s, p in parts.items()},
        y={s: relabel[y[p]] for s, p in parts.items()},
        ids={s: p for s, p in parts.items()},
        classes=dataset.classes[present],
        columns={name: {s: values[p] for s, p in parts.items()} for name, values in dataset.columns.items()},
    )
