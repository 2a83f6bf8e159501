"""Load the raw dataset: scikit-learn's bundled digits, a user's ``.npz`` or a CSV.

Whatever the source, the result is float32 inputs ``X`` (N×D tabular, or N×C×H×W images)
and integer labels ``y`` in ``0..K-1`` with ``classes`` holding the original label of each.
Malformed files fail with a :class:`DataError` that names the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config.schema import DataConfig
from pipeline.errors import DataError


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    name: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])


def load_dataset(cfg: DataConfig) -> Dataset:
    if cfg.source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        X, y, name = digits.images[:, None, :, :], digits.target, "digits"
    elif cfg.source == "npz":
        X, y = _read_npz(Path(cfg.path))
        name = Path(cfg.path).name
    else:
        X, y = _read_csv(Path(cfg.path), cfg.label_column)
        name = Path(cfg.path).name
    where = name if cfg.source == "digits" else str(cfg.path)
    X = _check_inputs(np.asarray(X), np.asarray(y), where)
    classes, y = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{where}: needs at least 2 classes, found {len(classes)}")
    if cfg.scale == "max":
        peak = float(np.abs(X).max())
        X = X / peak if peak > 0 else X
    return Dataset(X=X.astype(np.float32), y=y.astype(np.int64), classes=classes, name=name)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(archive.files) or 'none'} (need X and y)")
            return archive["X"], archive["y"]
    except DataError:
        raise
    except Exception as err:  # numpy's text suggests allow_pickle, which is never safe here
        raise DataError(
            f"{path}: not a readable .npz file: not a zip of .npy arrays, or it holds pickled objects, "
            f"which are refused ({type(err).__name__})"
        ) from None


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        frame = pd.read_csv(path)
    except Exception as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from None
    if label_column not in frame.columns:
        raise DataError(f"{path}: label column '{label_column}' not found; columns are {', '.join(map(str, frame.columns))}")
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides the label column '{label_column}'")
    text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        raise DataError(f"{path}: feature column(s) {', '.join(text)} are not numeric")
    labels = frame[label_column]
    if labels.isna().any():
        raise DataError(f"{path}: label column '{label_column}' has {int(labels.isna().sum())} empty value(s)")
    return features.to_numpy(dtype=np.float64), labels.to_numpy()


def _check_inputs(X: np.ndarray, y: np.ndarray, where: str) -> np.ndarray:
    if y.ndim != 1:
        raise DataError(f"{where}: y must be one label per example (1-D), got shape {y.shape}")
    if X.ndim < 2:
        raise DataError(f"{where}: X must have one row per example (N×D, N×H×W or N×C×H×W), got shape {X.shape}")
    if len(X) != len(y):
        raise DataError(f"{where}: X has {len(X)} examples but y has {len(y)}")
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{where}: X must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise DataError(f"{where}: X has NaN or infinite values in {len(rows)} example(s), first at row {rows[0]}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise DataError(f"{where}: y has NaN labels at row {int(np.nonzero(np.isnan(y))[0][0])}")
    if X.ndim == 3:  # N×H×W grayscale images: add the channel axis
        X = X[:, None, :, :]
    if X.ndim > 4:
        raise DataError(f"{where}: X has {X.ndim} dimensions; expected N×D, N×H×W or N×C×H×W")
    return X
