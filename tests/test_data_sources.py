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


def test_digits_are_bundled_images_loaded_unscaled():
    data = load_dataset(DataConfig())
    assert data.X.shape == (1797, 1, 8, 8) and data.X.dtype == np.float32
    assert data.X.max() == 16.0 and data.X.min() == 0.0  # prepare scales them (tests/test_own_data.py)
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
        (
            {"X": np.array([[0.0, np.nan], [1, 2]]), "y": np.array([0, 1])},
            "NaN or infinite values in 1 example(s), first at row 0",
        ),
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
    params = make_params(
        data={"source": "npz", "path": str(path)}, prepare={"target_kind": "domain_shift", "shots_per_class": 10}
    )
    with pytest.raises(DataError) as info:
        prepare_data(params)
    message = str(info.value)
    assert (
        message.startswith(f"{path}: class c has ")
        and "target training shots (prepare.shots_per_class), which needs 10" in message
    )


def test_csv_task_columns_are_kept_out_of_the_features_and_reach_full_npz(tmp_path, monkeypatch):
    """A user's own dataset declares extra label columns; the multitask stage reads them from full.npz."""
    from pipeline.data.prepare import prepare_data, write_prepared
    from pipeline.data.prepared import load_task
    from tests.conftest import make_params

    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "label": np.arange(n) % 3,
            "colour": np.where(np.arange(n) % 2 == 0, "red", "blue"),
            "size": np.arange(n) % 4,
        }
    )
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    params = make_params(
        data={"source": "csv", "path": str(path), "task_columns": ["colour", "size"]},
        prepare={"shots_per_class": 2, "target_val_per_class": 1, "active_learning": {"initial_labelled": 5}},
    )
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
    with pytest.raises(
        DataError, match="label column\\(s\\) colour named in data.task_columns not found; columns are a, label"
    ):
        load_dataset(DataConfig(source="csv", path=path, task_columns=["colour"]))
    npz = tmp_path / "data.npz"
    np.savez(npz, X=np.zeros((2, 3)), y=np.array([0, 1]), site=np.array([1]))
    with pytest.raises(
        DataError,
        match="label column\\(s\\) colour named in data.task_columns not found; the file's arrays are X, y, site",
    ):
        load_dataset(DataConfig(source="npz", path=npz, task_columns=["colour"]))
    with pytest.raises(
        DataError, match="label column 'site' must hold one value per example \\(2\\), got shape \\(1,\\)"
    ):
        load_dataset(DataConfig(source="npz", path=npz, task_columns=["site"]))


def _image(path, size, colour, value):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB" if colour else "L", size, (value, 0, 255 - value) if colour else value).save(path)


def test_image_folder_reads_every_class_resized_with_its_channels(tmp_path):
    root = tmp_path / "pets"
    for i in range(3):
        _image(root / "cat" / f"{i}.png", (12, 10), colour=False, value=10 * i)
        _image(root / "dog" / "nested" / f"{i}.jpg", (20, 16), colour=i == 0, value=200)
    (root / "dog" / ".DS_Store").write_text("hidden files are skipped")
    (root / "README.txt").write_text("files beside the class folders are not examples")

    data = load_dataset(DataConfig(source="image_folder", path=root, image_size=[8, 6]))
    assert data.X.shape == (6, 3, 8, 6) and data.X.dtype == np.float32  # one colour image: every image in colour
    assert list(data.classes) == ["cat", "dog"] and list(data.y) == [0, 0, 0, 1, 1, 1]
    assert data.X.max() > 1.0  # pixel values as read: prepare scales them
    grey = load_dataset(DataConfig(source="image_folder", path=root, image_size=8, channels=1))
    assert grey.X.shape == (6, 1, 8, 8)
    assert list(grey.X[:3, 0, 0, 0]) == [0, 10, 20]  # pixel values as written


def _truncated(path):
    _image(path, (4, 4), colour=False, value=7)
    path.write_bytes(path.read_bytes()[:45])  # the header (signature, IHDR) stays, the pixel data goes


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda root: (root / "a" / "x.png").write_text("not a png"), "x.png: not a readable image"),
        (
            lambda root: _truncated(root / "a" / "cut.png"),
            "cut.png: not a readable image",
        ),  # its header reads, its pixels do not
        (lambda root: (root / "a" / "notes.txt").write_text("text"), "notes.txt: not an image file Pillow reads"),
        (lambda root: _image(root / "a" / "big.png", (9, 9), False, 1), "big.png: image is 9x9 but"),
        (lambda root: (root / "c").mkdir(), "class folder 'c' holds no images"),
    ],
)
def test_a_malformed_image_folder_names_the_file_and_problem(tmp_path, make, problem):
    root = tmp_path / "images"
    for label in ("a", "b"):
        _image(root / label / "0.png", (4, 4), colour=False, value=1)
    make(root)
    with pytest.raises(DataError, match=problem.replace("(", r"\(")):
        load_dataset(DataConfig(source="image_folder", path=root))
    with pytest.raises(DataError, match="image folder not found"):
        load_dataset(DataConfig(source="image_folder", path=tmp_path / "absent"))


def _torchvision_importable() -> bool:
    import importlib

    try:
        importlib.import_module("torchvision.datasets")
    except Exception:  # absent, or a CUDA build that cannot load with the CPU torch wheel
        return False
    return True


NO_TORCHVISION = (
    "torchvision cannot be imported here (its PyPI wheels are CUDA builds that do not load with the CPU torch wheel)"
)


def _write_idx(path, array):
    """The IDX format of MNIST's files: magic (0, 0, type 0x08 = uint8, dims), big-endian sizes, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.skipif(not _torchvision_importable(), reason=NO_TORCHVISION)
@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_dataset_read_from_files_in_its_own_format(tmp_path, name, folder):
    """What torchvision leaves after a download, written small by hand: nothing is downloaded."""
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    for part, n in (("train", 12), ("t10k", 4)):
        _write_idx(raw / f"{part}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28)))
        _write_idx(raw / f"{part}-labels-idx1-ubyte", np.arange(n) % 10)
    data = load_dataset(DataConfig(source="torchvision", name=name, path=tmp_path, download=False))
    assert data.X.shape == (16, 1, 28, 28) and len(data.classes) == 10


@pytest.mark.skipif(
    _torchvision_importable(), reason="torchvision is importable here, so the error for its absence cannot be seen"
)
def test_torchvision_source_without_torchvision_says_what_to_install(tmp_path):
    with pytest.raises(
        DataError, match="needs the torchvision package.*install the torchvision build that matches torch"
    ):
        load_dataset(DataConfig(source="torchvision", name="cifar10", path=tmp_path))


@pytest.mark.parametrize(
    "data, key",
    [
        ({"source": "torchvision"}, "data.name"),
        ({"source": "digits", "name": "mnist"}, "data.name"),
        ({"source": "image_folder"}, "needs data.path"),
        ({"source": "csv", "path": "x.csv", "image_size": 32}, "data.image_size"),
        ({"source": "image_folder", "path": "x", "channels": 2}, "data.channels"),
        ({"source": "image_folder", "path": "x", "task_columns": ["a"]}, "data.task_columns"),
    ],
)
def test_image_source_params_are_checked(data, key):
    from pipeline.errors import ConfigError
    from pipeline.params import parse_params

    with pytest.raises(ConfigError, match=key):
        parse_params({"data": data})
