"""Every abandoned temporary output in the pipeline's output folders, removed at any entry.

A write removes the temporary versions of its own output that dead processes left (:func:`pipeline.io.atomic_path`),
but a stage DVC finds in its run cache is not run again ("Stage 'federated' is cached - skipping run"), so what its
``kill -9``-ed run left (``models/.federated.<host>-<pid>.<random>.tmp/``) would stay. Every stage's entry
(:mod:`pipeline.stage`) and ``python -m pipeline.tidy`` (which ``make run`` runs before ``dvc repro``) call this.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.io import output_of, remove_abandoned, remove_if_abandoned
from pipeline.paths import METRICS_DIR, MODELS_DIR, PLOTS_DIR, PREPARED_DIR, REPORTS_DIR

OUTPUT_FOLDERS = (PREPARED_DIR, MODELS_DIR, PLOTS_DIR, METRICS_DIR, REPORTS_DIR)


def remove_abandoned_outputs(root: str | Path = ".") -> list[Path]:
    """Remove, in and beside each output folder under ``root``, the temporary outputs that processes on this host
    left and that no longer run; what was removed. A live process's, or another machine's, stays."""
    removed = []
    for folder in OUTPUT_FOLDERS:
        folder = Path(root) / folder
        removed += remove_abandoned(folder)  # a temporary version of the folder itself, beside it
        for parent, folders, files in os.walk(folder):
            for name in [*folders, *files]:
                if remove_if_abandoned(Path(parent) / name):
                    removed.append(Path(parent) / name)
            folders[:] = [name for name in folders if output_of(Path(name)) is None]  # not into a temporary one
    return removed


def removed_line(leftover: Path) -> str:
    return f"removed {leftover}: a temporary output whose process ended before finishing it"
