"""Loading the raw dataset: digits, a user's .npz or CSV, and clear errors for malformed files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config.schema import DataConfig
from pipeline.data.prepare import prepare_data
from pipeline.data.sources import load_dataset
from pipeline.errors import DataError
from tests.conftest import make_params


def test_digits_are_bundled_images_scaled_to_unit_range():
    data = load_dataset(DataConfig())
    assert data.X.shape == (1797, 1, 8, 8) and data.X.dtype == np.float32
    assert data.X.max() == 1.0 and data.X.min() == 0.0
    assert list(data.classes) == list(range(10))


def test_npz_with_string_labels(tmp_path):
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(30, 5)), y=np.array(["cat", "dog", "eel"] * 10))
    data = load_dataset(DataConfig(source="npz", path=path))
    assert data.X.shape == (30, 5)
    assert list(data.classes) == ["cat", "dog", "eel"] and set(data.y) == {0, 1, 2}


def test_csv_with_label_column(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": range(12), "b": range(12, 24), "kind": ["x", "y", "z"] * 4}).to_csv(path, index=False)
    data = load_dataset(DataConfig(source="csv", path=path, label_column="kind"))
    assert data.X.shape == (12, 2) and len(data.classes) == 3


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return DataConfig(source="npz", path=path)


@pytest.mark.parametrize(
    "arrays, problem",
    [
        ({"X": np.zeros((4, 2))}, "missing array(s) y"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(5)}, "X has 4 examples but y has 5"),
        ({"X": np.array([[0.0, np.nan], [1, 2]]), "y": np.array([0, 1])}, "NaN or infinite values in 1 example(s), first at row 0"),
        ({"X": np.zeros((4, 2)), "y": np.zeros((4, 2))}, "y must be one label per example"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(4)}, "needs at least 2 classes"),
    ],
)
def test_malformed_npz_names_file_and_problem(tmp_path, arrays, problem):
    path = tmp_path / "bad.npz"
    with pytest.raises(DataError) as info:
        load_dataset(write_npz(path, **arrays))
    assert str(path) in str(info.value) and problem in str(info.value)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DataError, match=f"{path}: data file not found"):
        load_dataset(DataConfig(source="npz", path=path))


def test_file_that_is_not_npz(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz file: not a zip of .npy arrays") as err:
        load_dataset(DataConfig(source="npz", path=path))
    assert "\n" not in str(err.value) and "allow_pickle" not in str(err.value)


def test_csv_problems_name_the_column(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": [1, 2], "note": ["x", "y"], "label": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="feature column\\(s\\) note are not numeric"):
        load_dataset(DataConfig(source="csv", path=path))
    with pytest.raises(DataError, match="label column 'target' not found"):
        load_dataset(DataConfig(source="csv", path=path, label_column="target"))


def test_too_few_examples_per_class_for_the_splits(tmp_path):
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 40 + ["b"] * 40 + ["c"] * 12)
    path = tmp_path / "small.npz"
    np.savez(path, X=rng.normal(size=(len(y), 4)), y=y)
    params = make_params(data={"source": "npz", "path": str(path)}, prepare={"target_kind": "domain_shift", "shots_per_class": 10})
    with pytest.raises(DataError) as info:
        prepare_data(params)
    message = str(info.value)
    assert message.startswith(f"{path}: class c has ") and "target training shots (prepare.shots_per_class), which needs 10" in message


def test_csv_task_columns_are_kept_out_of_the_features_and_reach_full_npz(tmp_path, monkeypatch):
    """A user's own dataset declares extra label columns; the multitask stage reads them from full.npz."""
    from pipeline.data.prepare import prepare_data, write_prepared
    from pipeline.data.prepared import load_task
    from tests.conftest import make_params

    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": np.arange(n) % 3,
                          "colour": np.where(np.arange(n) % 2 == 0, "red", "blue"), "size": np.arange(n) % 4})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    params = make_params(data={"source": "csv", "path": str(path), "task_columns": ["colour", "size"]},
                         prepare={"shots_per_class": 2, "target_val_per_class": 1, "active_learning": {"initial_labelled": 5}})
    write_prepared(prepare_data(params), tmp_path / "prepared")
    full = load_task(tmp_path / "prepared" / "full.npz")
    assert full.input_shape == (2,)  # a and b only
    assert sorted(full.columns) == ["colour", "size"]
    for split in ("train", "val", "test"):
        rows = full.ids[split]
        assert full.columns["colour"][split].tolist() == frame["colour"].to_numpy()[rows].tolist()
        assert full.columns["size"][split].tolist() == frame["size"].to_numpy()[rows].tolist()


def test_a_declared_task_column_missing_from_the_file_is_named(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": [1.0, 2.0], "label": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="label column\\(s\\) colour named in data.task_columns not found; columns are a, label"):
        load_dataset(DataConfig(source="csv", path=path, task_columns=["colour"]))
    npz = tmp_path / "data.npz"
    np.savez(npz, X=np.zeros((2, 3)), y=np.array([0, 1]), site=np.array([1]))
    with pytest.raises(DataError, match="label column\\(s\\) colour named in data.task_columns not found; the file's arrays are X, y, site"):
        load_dataset(DataConfig(source="npz", path=npz, task_columns=["colour"]))
    with pytest.raises(DataError, match="label column 'site' must hold one value per example \\(2\\), got shape \\(1,\\)"):
        load_dataset(DataConfig(source="npz", path=npz, task_columns=["site"]))
