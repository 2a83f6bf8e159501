"""Load the raw dataset: scikit-learn's bundled digits, a user's ``.npz``, CSV or image folder, or
a torchvision dataset by name (see :mod:`pipeline.data.images`).

Whatever the source, the result is float32 inputs ``X`` of any per-example shape: N×D tables,
N×L or N×C×L signals, N×H×W or N×C×H×W images (an ``.npz`` keeps the shape it has; the other
sources give N×D or N×C×H×W, and the backbones read the shape), not yet scaled (``prepare``
does that, :mod:`pipeline.data.scaling`), and integer labels ``y`` in ``0..K-1`` with
``classes`` holding the original label of each.
A file may also hold extra label columns (``data.task_columns``): they are kept apart from
the features, as raw values, for multi-task learning. Malformed files fail with a
:class:`DataError` that names the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config.schema import DEFAULT_DOWNLOADS, DataConfig
from pipeline.data.images import read_image_folder, read_torchvision
from pipeline.errors import DataError


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    name: str
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # extra labels: raw value per example

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])


def load_dataset(cfg: DataConfig) -> Dataset:
    if cfg.source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        X, y, name = digits.images[:, None, :, :], digits.target, "digits"
        columns: dict[str, np.ndarray] = {}
    elif cfg.source == "npz":
        X, y, columns = _read_npz(Path(cfg.path), cfg.task_columns)
        name = Path(cfg.path).name
    elif cfg.source == "csv":
        X, y, columns = _read_csv(Path(cfg.path), cfg.label_column, cfg.task_columns)
        name = Path(cfg.path).name
    elif cfg.source == "image_folder":
        (X, y), columns = read_image_folder(Path(cfg.path), cfg.image_size, cfg.channels), {}
        name = Path(cfg.path).name
    else:
        (X, y), columns = read_torchvision(cfg.name, Path(cfg.path or DEFAULT_DOWNLOADS), cfg.download), {}
        name = cfg.name
    where = str(cfg.path) if cfg.source in ("npz", "csv", "image_folder") else name
    X = _check_inputs(np.asarray(X), np.asarray(y), where)
    columns = {column: _check_column(values, column, len(y), where) for column, values in columns.items()}
    classes, y = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{where}: needs at least 2 classes, found {len(classes)}")
    return Dataset(X=X.astype(np.float32), y=y.astype(np.int64), classes=classes, name=name, columns=columns)


def _read_npz(path: Path, task_columns: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(archive.files) or 'none'} (need "
                    "X and y)"
                )
            absent = [c for c in task_columns if c not in archive.files]
            if absent:
                raise DataError(
                    f"{path}: label column(s) {', '.join(absent)} named in data.task_columns not found; "
                    f"the file's arrays are {', '.join(archive.files)}"
                )
            return archive["X"], archive["y"], {c: archive[c] for c in task_columns}
    except DataError:
        raise
    except Exception as err:  # numpy's text suggests allow_pickle, which is never safe here
        raise DataError(
            f"{path}: not a readable .npz file: not a zip of .npy arrays, or it holds pickled objects, "
            f"which are refused ({type(err).__name__})"
        ) from None


def _read_csv(
    path: Path, label_column: str, task_columns: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        frame = pd.read_csv(path)
    except Exception as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from None
    if label_column not in frame.columns:
        raise DataError(
            f"{path}: label column '{label_column}' not found; columns are {', '.join(map(str, frame.columns))}"
        )
    absent = [c for c in task_columns if c not in frame.columns]
    if absent:
        raise DataError(
            f"{path}: label column(s) {', '.join(absent)} named in data.task_columns not found; "
            f"columns are {', '.join(map(str, frame.columns))}"
        )
    features = frame.drop(columns=[label_column, *task_columns])
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides the label column '{label_column}'")
    text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        raise DataError(f"{path}: feature column(s) {', '.join(text)} are not numeric")
    labels = frame[label_column]
    if labels.isna().any():
        raise DataError(f"{path}: label column '{label_column}' has {int(labels.isna().sum())} empty value(s)")
    return features.to_numpy(dtype=np.float64), labels.to_numpy(), {c: frame[c].to_numpy() for c in task_columns}


def _check_column(values: np.ndarray, column: str, n: int, where: str) -> np.ndarray:
    """An extra label column as plain numbers or text (saved without pickling), one value per example."""
    values = np.asarray(values)
    if values.shape != (n,):
        raise DataError(
            f"{where}: label column '{column}' must hold one value per example ({n}), got shape {values.shape}"
        )
    if values.dtype.kind in "fc" and np.isnan(values).any():
        raise DataError(f"{where}: label column '{column}' has {int(np.isnan(values).sum())} empty value(s)")
    if values.dtype.kind == "O":
        empty = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and np.isnan(v))]
        if empty:
            raise DataError(
                f"{where}: label column '{column}' has {len(empty)} empty value(s), first at row {empty[0]}"
            )
        values = values.astype(str)
    if values.dtype.kind not in "biufU":
        raise DataError(f"{where}: label column '{column}' must hold numbers or text, got dtype {values.dtype}")
    return values


def _check_inputs(X: np.ndarray, y: np.ndarray, where: str) -> np.ndarray:
    if y.ndim != 1:
        raise DataError(f"{where}: y must be one label per example (1-D), got shape {y.shape}")
    if X.ndim < 2:
        raise DataError(f"{where}: X must have one row per example (N×D, N×C×L, N×H×W or N×C×H×W), got shape {X.shape}")
    if len(X) != len(y):
        raise DataError(f"{where}: X has {len(X)} examples but y has {len(y)}")
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{where}: X must be numeric, got dtype {X.dtype}")
    # 8- and 16-bit pixels: exact in float32, at half the memory
    small_ints = X.dtype.kind in "iu" and X.dtype.itemsize <= 2
    X = X.astype(np.float32 if small_ints else np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise DataError(f"{where}: X has NaN or infinite values in {len(rows)} example(s), first at row {rows[0]}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise DataError(f"{where}: y has NaN labels at row {int(np.nonzero(np.isnan(y))[0][0])}")
    # N×C×L signals and N×H×W grey images look alike: the shape is kept, and each backbone reads it its own way
    if X.ndim > 4:
        raise DataError(f"{where}: X has {X.ndim} dimensions; expected N×D, N×C×L, N×H×W or N×C×H×W")
    return X
