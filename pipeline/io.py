"""Atomic file writes: an interrupted stage never leaves a half-written output behind.

Every output goes to a temporary file in the same folder and is renamed into place only
once it is complete, so a later stage (or DVC) can trust any file it finds. In a distributed run only
the first process writes: the others fill a scratch copy that is thrown away (:mod:`pipeline.ranks`).

A process killed with ``kill -9`` cannot remove its temporary output, so each one's name says who wrote
it (``.<name>.<host>-<pid>.<random>.tmp``): the next write of the same output removes those whose process
on this host is gone.
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
    removed = []
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        owner = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        host, _, pid = owner.rpartition("-")
        if host != THIS_HOST or not pid.isdigit() or psutil.pid_exists(int(pid)):
            continue  # another machine's, or a live process's (or one with its pid: it goes next time)
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def _owned_prefix(path: Path) -> str:
    return f".{path.name}.{THIS_HOST}-{os.getpid()}."


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
