"""The layers contract (``[tool.importlinter]`` in pyproject.toml) holds on the code, and breaks on what it forbids.

Each breaking case plants one import in a copy of the code and runs the real ``lint-imports`` on it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def code_copy(tmp_path) -> Path:
    for package in ("pipeline", "stages"):
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def plant(root: Path, module: str, line: str) -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_code_keeps_every_contract():
    out = lint_imports(PROJECT_ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        # the models knowing the training code: an import from a lower layer up
        ("pipeline.models.classifier", "from pipeline.training import optimizers", "pipeline.models.classifier ->"),
        # the data layer knowing MLflow's run logging
        ("pipeline.data.splits", "from pipeline.tracking import runs", "pipeline.data.splits ->"),
        # a paradigm reading the whole params file (through the registry, every other paradigm)
        ("pipeline.paradigms.transfer.run", "from pipeline import params", "pipeline.paradigms.transfer.run ->"),
    ],
)
def test_an_upward_import_breaks_the_layers(code_copy, module, line, broken):
    plant(code_copy, module, line)
    out = lint_imports(code_copy)
    assert out.returncode == 1
    assert "each layer imports only from the layers below it BROKEN" in out.stdout
    assert broken in out.stdout


def test_a_paradigm_importing_another_breaks_their_independence(code_copy):
    plant(code_copy, "pipeline.paradigms.transfer.run", "from pipeline.paradigms.finetune import adapters")
    out = lint_imports(code_copy)
    assert out.returncode == 1
    assert "no paradigm imports another's code: what they share is pipeline/paradigms/*.py BROKEN" in out.stdout
    assert "pipeline.paradigms.transfer.run -> pipeline.paradigms.finetune.adapters" in out.stdout


def test_a_new_module_must_be_given_its_layer(code_copy):
    (code_copy / "pipeline" / "helpers.py").write_text('"""Somewhere between the layers."""\n')
    out = lint_imports(code_copy)
    assert out.returncode == 1
    assert "pipeline.helpers" in out.stdout
