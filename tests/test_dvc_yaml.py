"""dvc.yaml against the code: every stage lists what its code imports, reads and writes, and nothing else.

A stage's code is the import closure of its script inside the project, found by reading the source
(every ``import``, at any depth, except those only a type checker runs; a package ``__init__`` that
holds nothing but its docstring runs nothing). The compare stage also loads each paradigm's
comparison section, through the registry's references. One thing is left out on purpose: the
registry's list and the other paradigms' declarations (their ``__init__``, their ``config`` and what
that imports from their package), which a training stage imports only to validate params.yaml. They
decide whether params are valid, never what the stage computes, so adding or changing a paradigm
re-runs that paradigm's stage and compare, not every stage.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

from pipeline.paradigms import Paradigm, paradigms
from pipeline.paths import BASE_CHECKPOINT, MODELS_DIR, PLOTS_DIR, PREPARE_METRICS, PREPARED_DIR, metrics_dir_of
from tests.conftest import PROJECT_ROOT

PACKAGES = ("pipeline", "stages")
REGISTRY = "pipeline/paradigms/__init__.py"
STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


def module_file(module: str) -> Path | None:
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runs_nothing(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return path.name == "__init__.py" and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
    )


def _imported(path: Path) -> set[str]:
    """Modules a file imports (with ``from a import b``, ``a.b`` too when it is a module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: the project imports absolutely"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name.split(".")[0] in PACKAGES and module_file(name)}


@cache
def closure(module: str) -> frozenset[str]:
    """Project files that importing ``module`` runs: its own, its packages' ``__init__``, and theirs, transitively."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, then a/b/c
            current = ".".join(parts[:depth])
            path = module_file(current)
            if path is None or current in seen:
                continue
            seen[current] = path
            todo.extend(_imported(path))
    return frozenset(str(p.relative_to(PROJECT_ROOT)) for p in seen.values() if not _runs_nothing(p))


def declaration(entry: Paradigm) -> frozenset[str]:
    """What importing a paradigm's declaration runs from its own package (its __init__, its config, ...)."""
    own = f"pipeline/paradigms/{entry.stage}/"
    return frozenset(path for path in closure(f"pipeline.paradigms.{entry.stage}") if path.startswith(own))


def code_of(stage: str) -> frozenset[str]:
    """The project files a stage's outputs depend on (see the module's docstring for what is left out)."""
    code = set(closure(f"stages.{stage}"))
    if stage == "compare":  # it reads every declaration (a paradigm's task names its rows) and loads every section
        return frozenset(code.union(*(closure(entry.compare.module) for entry in paradigms() if entry.compare)))
    code.discard(REGISTRY)
    return frozenset(code.difference(*(declaration(entry) for entry in paradigms() if entry.stage != stage)))


def covers(dep: str, path: str) -> bool:
    return path == dep or path.startswith(dep.rstrip("/") + "/")


def uncovered(stage: str, deps: list[str]) -> list[str]:
    """The stage's code files no dep lists (a file, or a folder above it)."""
    return sorted(path for path in code_of(stage) if not any(covers(dep, path) for dep in deps))


def code_deps(stage: str) -> list[str]:
    return [dep for dep in STAGES[stage]["deps"] if dep.split("/")[0] in PACKAGES]


def test_the_stages_are_prepare_the_registered_paradigms_in_order_and_compare():
    assert list(STAGES) == ["prepare", *(entry.stage for entry in paradigms()), "compare"]
    for name, stage in STAGES.items():
        assert stage["cmd"] == f"python -m stages.{name}", name
        assert f"stages/{name}.py" in stage["deps"], name


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_lists_the_code_it_imports_and_nothing_it_does_not(stage):
    deps = code_deps(stage)
    assert uncovered(stage, deps) == [], f"dvc.yaml: stage {stage} does not list code it imports"
    for dep in deps:  # each listed piece of code is needed: without it, something the stage imports goes unlisted
        assert uncovered(stage, [d for d in deps if d != dep]), (
            f"dvc.yaml: stage {stage} lists {dep}, which it does not import"
        )


def test_a_removed_dependency_is_caught():
    deps = code_deps("federated")
    assert "pipeline/ranks.py" in deps and uncovered("federated", deps) == []
    assert uncovered("federated", [d for d in deps if d != "pipeline/ranks.py"]) == ["pipeline/ranks.py"]
    assert "pipeline/paradigms/repeats.py" in uncovered(
        "finetune", [d for d in code_deps("finetune") if "repeats" not in d]
    )


@pytest.mark.parametrize("entry", paradigms(), ids=lambda entry: entry.stage)
def test_each_paradigm_reads_and_writes_where_dvc_yaml_says(entry):
    stage = STAGES[entry.stage]
    assert tuple(stage["params"]) == entry.sections
    reads = {dep for dep in stage["deps"] if dep.split("/")[0] not in PACKAGES}
    run_source = Path(module_file(entry.run.module)).read_text()
    assert f"{PREPARED_DIR}/{entry.task}.npz" in reads
    assert (str(BASE_CHECKPOINT) in reads) == ("paths.base" in run_source), (
        "reads pretrain's base exactly when its run does"
    )
    outs = [next(iter(out)) if isinstance(out, dict) else out for out in stage["outs"]]
    assert outs and all(covers(str(MODELS_DIR / entry.stage), out) for out in outs)
    for plot in stage.get("plots", []):
        assert covers(str(PLOTS_DIR / entry.stage), next(iter(plot)))
    assert metrics_of(entry.stage) == [metrics_dir_of(entry.stage).as_posix()]
    assert metrics_dir_of(entry.stage).as_posix() in STAGES["compare"]["deps"]


def metrics_of(stage: str) -> list[str]:
    """The stage's metrics entries, each kept in git (``cache: false``) as DVC shows it."""
    found = STAGES[stage]["metrics"]
    assert all(next(iter(m.values())) == {"cache": False} for m in found), stage
    return [next(iter(m)) for m in found]


def test_prepare_writes_one_metrics_file_and_compare_a_folder_read_by_no_stage():
    """A folder per stage: ``dvc metrics show`` has a row per file in it, one per variant (one per question for
    compare), and so only a few short columns."""
    assert metrics_of("prepare") == [PREPARE_METRICS.as_posix()]
    assert metrics_of("compare") == [metrics_dir_of("compare").as_posix()]
    read = [dep for stage in STAGES.values() for dep in stage["deps"] if dep.startswith(metrics_dir_of("").as_posix())]
    assert sorted(read) == sorted(metrics_dir_of(entry.stage).as_posix() for entry in paradigms())


def test_prepare_writes_every_task_a_paradigm_reads():
    outs = set(STAGES["prepare"]["outs"])
    assert {f"{PREPARED_DIR}/{entry.task}.npz" for entry in paradigms()} <= outs
    for stage in STAGES.values():
        assert {dep for dep in stage["deps"] if dep.startswith(str(PREPARED_DIR))} <= outs
