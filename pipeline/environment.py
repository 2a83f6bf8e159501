"""Is this Python the project's environment? Asked first by every stage, before anything is imported.

`dvc repro` runs each stage with the ``python`` it finds on PATH. Run as ``.venv/bin/dvc repro`` without
the environment active, that is another Python, and the stage would die on its first import with a
``ModuleNotFoundError`` traceback. Standard library only, so that it runs in any Python.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Import names of the packages every stage needs (pyproject.toml's dependencies).
NEEDED = ("torch", "lightning", "mlflow", "optuna", "pandas", "pydantic", "yaml", "peft", "sklearn")
ENVIRONMENT_EXIT = 2


def missing_packages() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def require_project_environment() -> None:
    """Exit with one line saying how to run in the project's environment if this Python lacks its packages."""
    missing = missing_packages()
    if not missing:
        return
    venv = Path(".venv/bin")
    fix = (
        f"run `make run`, or put the environment first on PATH (`source {venv}/activate`, or "
        f"`PATH=$PWD/{venv}:$PATH dvc repro`)"
        if venv.is_dir()
        else "run `make setup` then `make run`, or install the project into this Python (`pip install -e .`)"
    )
    print(
        f"error: {sys.executable} is not the project's environment (it lacks {', '.join(missing)}): {fix}",
        file=sys.stderr,
    )
    sys.exit(ENVIRONMENT_EXIT)
