"""Whether a run is the committed workspace's main run or an experiment: only the main run may move what the
project publishes as its answer (the registry's champions, :mod:`pipeline.compare.registry`).

An experiment is a run inside ``dvc exp run`` (DVC sets :data:`EXPERIMENT_ENV` in every stage it runs, in the
workspace, a queue or a temp dir), or one whose params.yaml or data file differs from the commit: the way a user
tries another learning rate or another dataset before committing to it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from pipeline.config.schema import DataConfig
from pipeline.tracking.runs import git_output

EXPERIMENT_ENV = "DVC_EXP_NAME"
FILE_SOURCES = ("npz", "csv", "image_folder")  # the data sources that read the user's own data.path


def why_experiment(params_file: Path, data: DataConfig) -> Optional[str]:
    """Why this run is an experiment, in words, or None for the main run.

    Outside a git repository (or without git) every run is the main run: there is no commit to differ from.
    A file git ignores (data tracked by a ``.dvc`` file) counts as committed: DVC, not git, versions it."""
    name = os.environ.get(EXPERIMENT_ENV)
    if name:
        return f"DVC experiment {name}"
    files = [params_file] + ([data.path] if data.source in FILE_SOURCES and data.path is not None else [])
    changed = [_changed(path) for path in files]
    if changed[0] is None:
        return None  # not a git repository, or no git
    for path, differs in zip(files, changed):
        if differs:  # a data file outside the repository (None) is not git's to judge
            return f"{path} differs from the commit (modified or untracked)"
    return None


def _changed(path: Path) -> Optional[bool]:
    """Whether git sees ``path`` modified or untracked; None when git cannot say (no repository, a path outside it)."""
    status = git_output("--literal-pathspecs", "status", "--porcelain", "--untracked-files=all", "--", str(path))
    return None if status is None else bool(status.strip())
