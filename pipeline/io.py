"""Atomic file writes: an interrupted stage never leaves a half-written output behind.

Every output goes to a temporary file in the same folder and is renamed into place only
once it is complete, so a later stage (or DVC) can trust any file it finds. In a distributed run only
the first process writes: the others fill a scratch copy that is thrown away (:mod:`pipeline.ranks`).

A process killed with ``kill -9`` cannot remove its temporary output, so each one's name says who wrote
it (``.<name>.<host>-<pid>.<random>.tmp``): the next write of the same output removes those whose process
on this host is gone, and so does every stage's start and ``python -m pipeline.tidy`` (:mod:`pipeline.leftovers`).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psutil

from pipeline.ranks import is_global_zero

# This machine, as a temporary output's name can hold it (no dots or dashes, which separate its parts).
THIS_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
# A temporary output's name: ``.<name>.<host>-<pid>.<random>.tmp<suffix>`` (mkstemp's random part has no dot; the
# suffix is the output's own, as ``.pt``, or none).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9]+)-(?P<pid>[0-9]+)\.[a-z0-9_]+\.tmp(\.[^.]*)?")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    if not is_global_zero():
        with tempfile.TemporaryDirectory(prefix="paradigm-lab-rank-") as scratch:
            yield Path(scratch) / path.name
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path)
    fd, tmp = tempfile.mkstemp(prefix=_owned_prefix(path), suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it private; the output should not be
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a file handle stops numpy from appending '.npz'
            np.savez_compressed(handle, **arrays)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces the folder ``path``, on error it is removed."""
    path = Path(path)
    if not is_global_zero():
        with tempfile.TemporaryDirectory(prefix="paradigm-lab-rank-") as scratch:
            yield Path(scratch)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path)
    tmp = Path(tempfile.mkdtemp(prefix=_owned_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_abandoned(path: Path) -> list[Path]:
    """Remove the temporary versions of ``path`` left by processes on this host that no longer run."""
    leftovers = path.parent.glob(f".{glob.escape(path.name)}.*.tmp*")
    return [leftover for leftover in leftovers if output_of(leftover) == path.name and remove_if_abandoned(leftover)]


def output_of(leftover: Path) -> str | None:
    """The name of the output ``leftover`` is a temporary version of; None when it is not a temporary output."""
    match = _TEMPORARY.fullmatch(leftover.name)
    return match["name"] if match else None


def remove_if_abandoned(leftover: Path) -> bool:
    """Remove ``leftover`` if it is a temporary output whose process on this host no longer runs; whether it did."""
    match = _TEMPORARY.fullmatch(leftover.name)
    if match is None or match["host"] != THIS_HOST or psutil.pid_exists(int(match["pid"])):
        return False  # not one, another machine's, or a live process's (or one with its pid: it goes next time)
    if leftover.is_dir():
        shutil.rmtree(leftover, ignore_errors=True)
    else:
        leftover.unlink(missing_ok=True)
    return True


def _owned_prefix(path: Path) -> str:
    return f".{path.name}.{THIS_HOST}-{os.getpid()}."


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
