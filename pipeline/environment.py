"""Is this Python the project's environment? Asked first by every entry point, before anything is imported.

Every command is run as ``python -m ...`` (and ``dvc repro`` runs each stage with the ``python`` it finds on PATH), so
in a terminal where ``.venv`` is not activated it is another Python, and the command would die on its first import
with a ``ModuleNotFoundError`` traceback. ``pipeline/__init__.py`` asks this before any submodule loads. Standard
library only, so that it runs in any Python.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Import names of the packages the entry points import (pyproject.toml's dependencies; the optional flwr and
# torchvision are checked where they are used). tests/test_faults.py checks this list against the code's imports.
NEEDED = (
    "torch",
    "lightning",
    "torchmetrics",
    "peft",
    "safetensors",
    "mlflow",
    "optuna",
    "filelock",
    "pandas",
    "numpy",
    "scipy",
    "sklearn",
    "pydantic",
    "yaml",
    "ruamel.yaml",
    "matplotlib",
    "psutil",
    "opacus",
    "baal",
    "tabulate",
    "PIL",
    "sqlalchemy",
    "requests",
)
ENVIRONMENT_EXIT = 2
SHOWN = 3  # missing packages named in the line; the rest are counted
VENV = Path(".venv")


def missing_packages() -> list[str]:
    return [name for name in NEEDED if not _importable(name)]


def require_project_environment() -> None:
    """Exit with one line saying how to run in the project's environment if this Python lacks its packages."""
    missing = missing_packages()
    if not missing:
        return
    lacks = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
    print(f"error: {sys.executable} is not the project's environment (it lacks {lacks}): {_fix()}", file=sys.stderr)
    sys.exit(ENVIRONMENT_EXIT)


def _fix() -> str:
    activate = f"source {VENV}/bin/activate"
    if not (VENV / "bin").is_dir():
        return f"run make setup, then activate it ({activate}); or pip install -e . into this Python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return "install the project into it (pip install -e .)"  # the environment itself, but incomplete
    return f"activate it first ({activate}), or run make setup"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing, or a module set to None
        return False
