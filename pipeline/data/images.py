"""Image datasets: a folder of images with one sub-folder per class, or a torchvision dataset by name.

An image folder is read with Pillow, in any format it opens, at any size (``data.image_size``
resizes) and channel count (``data.channels``: 1 grey, 3 colour). torchvision's MNIST,
Fashion-MNIST and CIFAR-10 are downloaded on first use into ``data.path`` when ``data.download``
is true; their official train and test parts are joined, and ``prepare`` splits them as any
other source. Both return uint8 images N×C×H×W and each example's class name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.errors import DataError

# params name -> torchvision.datasets class
TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def read_image_folder(
    root: Path, size: Optional[tuple[int, int]], channels: Optional[int]
) -> tuple[np.ndarray, np.ndarray]:
    """``root/<class>/**/<image>``: every image as C×H×W uint8, and its class (the sub-folder's name)."""
    from PIL import Image

    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"{root}: no class sub-folders; expected one folder per class holding its images (<root>/<class>/<image>)"
        )
    readable = {ext for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN}
    files: list[tuple[Path, str]] = []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not found:
            raise DataError(f"{folder}: class folder '{folder.name}' holds no images")
        for path in found:
            if path.suffix.lower() not in readable:
                raise DataError(
                    f"{path}: not an image file Pillow reads (extension '{path.suffix}'); move it out of {root}"
                )
        files += [(path, folder.name) for path in found]

    headers = [_open(path, lambda image: (image.mode, image.size), decode=False) for path, _ in files]  # no pixels yet
    if channels is None:  # colour if any image has colour
        channels = 1 if all(mode in GREY_MODES for mode, _ in headers) else 3
    first, first_size = files[0][0], headers[0][1]
    if size is None:
        for (path, _), (_, seen) in zip(files, headers):
            if seen != first_size:
                raise DataError(
                    f"{path}: image is {seen[0]}x{seen[1]} but {first} is {first_size[0]}x{first_size[1]}; "
                    "set data.image_size [height, width] to resize every image"
                )
    wanted = (size[1], size[0]) if size else first_size  # Pillow speaks of width x height

    def pixels(image) -> np.ndarray:
        image = image if image.size == wanted else image.resize(wanted, Image.Resampling.BILINEAR)
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    X = np.stack([_open(path, pixels) for path, _ in files])
    return X, np.array([label for _, label in files])


def _open(path: Path, use, decode: bool = True):
    """``use(image)`` on the opened image (its pixels decoded, unless ``decode`` is false: the header
    alone), or a :class:`DataError` naming a file Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if decode:
                image.load()
            return use(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None


def read_torchvision(name: str, root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's ``name`` dataset (train and test parts) from ``root``, downloaded there if asked."""
    datasets = _torchvision_datasets()
    kind = getattr(datasets, TORCHVISION_DATASETS[name])
    images, labels = [], []
    for train in (True, False):
        try:
            part = kind(root=str(root), train=train, download=download)
        except RuntimeError as err:  # not found (download off) or failed its integrity check
            hint = "" if download else "; set data.download true to fetch it"
            raise DataError(f"{root}: torchvision's {name} could not be read ({err}){hint}") from None
        X = np.asarray(part.data, dtype=np.uint8)
        images.append(X[:, None] if X.ndim == 3 else X.transpose(0, 3, 1, 2))  # MNIST N×H×W, CIFAR N×H×W×C
        labels.append(np.asarray(part.classes)[np.asarray(part.targets)])
    return np.concatenate(images), np.concatenate(labels)


def _torchvision_datasets():
    try:
        import torchvision.datasets
    except Exception as err:  # absent, or a build that does not match the installed torch
        import torch

        raise DataError(
            "data.source = torchvision needs the torchvision package, which could not be imported "
            f"({type(err).__name__}: {err}); "
            f"install the torchvision build that matches torch {torch.__version__}, or use data.source image_folder"
        ) from None
    return torchvision.datasets
