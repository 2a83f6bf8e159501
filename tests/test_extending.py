"""A paradigm is a plug-in: one registered from outside the package (tests/toy_paradigm.py) is in the
params schema, its checks and its errors, in sweeps and in the registry, with none of them edited.
(The comparison is shown in tests/test_compare.py, whose pipeline includes it.)"""

from __future__ import annotations

import ast
import sys

import pytest
from mlflow.tracking import MlflowClient

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.errors import ConfigError, UserError
from pipeline.paradigms import BUILT_IN, paradigm, paradigms, registered
from pipeline.paradigms.active_learning.config import QUERY_STRATEGIES
from pipeline.paradigms.active_learning.strategies import STRATEGIES as QUERY_CLASSES
from pipeline.params import Params
from pipeline.paths import StagePaths
from pipeline.sweep.run import run_sweep
from tests import toy_paradigm
from tests.conftest import PROJECT_ROOT, make_params


def test_a_registered_paradigm_gets_a_params_section_with_its_defaults_checks_and_one_line_errors():
    with registered(toy_paradigm.PARADIGM):
        assert [p.stage for p in paradigms()][-1] == "narrow" and paradigm("narrow") is toy_paradigm.PARADIGM
        params = make_params(narrow={"width": 4})
        assert params.narrow.width == 4 and make_params().narrow.width == 16
        assert params.trainer_for("narrow").max_epochs == params.trainer.max_epochs
        with pytest.raises(
            ConfigError, match=r"unknown key 'narrow.widht' \(value 4\); allowed in narrow: trainer, width"
        ):
            make_params(narrow={"widht": 4})
        with pytest.raises(ConfigError, match=r"narrow.width = 0: must be greater than or equal to 1"):
            make_params(narrow={"width": 0})
        with pytest.raises(ConfigError, match=r"narrow.width = 64: must be narrower than model.hidden_sizes \(32\)"):
            make_params(narrow={"width": 64})
        with pytest.raises(UserError, match="stage 'narrow' is registered already"), registered(toy_paradigm.PARADIGM):
            pass
    with pytest.raises(ConfigError, match="unknown key 'narrow'"):  # gone with its registration
        make_params(narrow={"width": 4})
    with pytest.raises(UserError, match="no paradigm has a stage 'narrow'; allowed: pretrain, transfer"):
        paradigm("narrow")
    assert "narrow" not in Params.model_fields


def test_a_registered_paradigm_is_swept_by_its_own_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with registered(toy_paradigm.PARADIGM):
        space = {"narrow.width": {"type": "int", "low": 2, "high": 6}}
        params = make_params(trainer={"max_epochs": 1}, sweep={"narrow": {"space": space}})
        write_prepared(prepare_data(params), StagePaths.of("narrow").data)
        result = run_sweep(params, "narrow", 2, "narrow", f"sqlite:///{tmp_path / 'optuna.db'}")
        assert result.ran == 2 and 2 <= result.best_params["narrow.width"] <= 6
        trials = MlflowClient().search_runs(
            [MlflowClient().get_experiment_by_name("paradigm-lab").experiment_id],
            "tags.stage = 'narrow' and tags.sweep_role = 'trial'",
        )
        assert len(trials) == 2


def test_the_built_in_paradigms_are_each_a_package_with_a_declaration_config_and_run():
    for entry in BUILT_IN:
        folder = PROJECT_ROOT / "pipeline" / "paradigms" / entry.stage
        assert {"__init__.py", "config.py", "run.py"} <= {p.name for p in folder.iterdir()}, entry.stage
        assert entry.run.module == f"pipeline.paradigms.{entry.stage}.run" and callable(entry.run.load())
        assert entry.compare is None or entry.compare.module == f"pipeline.paradigms.{entry.stage}.compare"
        assert entry.config.__module__ == f"pipeline.paradigms.{entry.stage}.config"


def test_no_central_module_names_a_paradigm():
    """Compare, sweeps and the schema read the registry: none of their modules names a paradigm's stage."""
    central = [
        *(PROJECT_ROOT / "pipeline" / "compare").glob("*.py"),
        *(PROJECT_ROOT / "pipeline" / "sweep").glob("*.py"),
        *(PROJECT_ROOT / "pipeline" / "config").glob("*.py"),
    ]
    stages = {entry.stage for entry in BUILT_IN}
    for path in central:
        strings = {node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)}
        assert not stages & strings, f"{path.name} names {stages & strings}"


def test_loading_params_imports_no_paradigm_code_nor_torch():
    """Of the paradigms, loading params.yaml imports their declarations and params sections alone: no run or
    compare module, nor any other module of theirs (the active-learning section checks its strategy names against
    ``strategies``, numpy only); and no torch, MLflow, Optuna or Lightning.

    Catches: the registry (or a declaration) importing torch-free paradigm code, e.g. ``paradigms.repeats``."""
    import json
    import subprocess

    code = (
        "import json, sys; from pipeline.params import load_params; load_params(); "
        "print(json.dumps([sorted(m for m in ('torch', 'mlflow', 'optuna', 'lightning') if m in sys.modules), "
        "sorted(m for m in sys.modules if m.startswith('pipeline.paradigms.'))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    heavy, loaded = json.loads(out.stdout)
    assert heavy == []
    declarations = {"pipeline.paradigms.plugin", "pipeline.paradigms.active_learning.strategies"}
    declarations |= {f"pipeline.paradigms.{entry.stage}{part}" for entry in BUILT_IN for part in ("", ".config")}
    assert set(loaded) - declarations == set()


def test_every_query_strategy_class_is_a_schema_choice_and_back():
    assert set(QUERY_CLASSES) == set(QUERY_STRATEGIES)
    assert [name for name, cls in QUERY_CLASSES.items() if cls.mc_dropout] == ["bald"]
