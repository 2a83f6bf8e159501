"""The registry's champions move only when the main run says so: in a real git repo with a real MLflow store, an
experiment (``dvc exp run``, an uncommitted params.yaml or data file) moves ``@challenger`` and leaves
``@champion`` where it was; ``python -m pipeline.compare --promote`` makes the challengers the champions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.compare.registry import (
    CHALLENGER,
    CHAMPION,
    EXPERIMENT_TAG,
    PROMOTE,
    promote_challengers,
    register_champions,
    registered_name,
)
from pipeline.compare.report import headlines
from pipeline.params import DEFAULT_PARAMS_FILE
from pipeline.reporting.headline import Champion
from pipeline.reporting.sections import Section
from pipeline.tracking.workspace import EXPERIMENT_ENV, why_experiment
from tests.conftest import make_params, sh

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
QUESTION = "target-task"


@pytest.fixture
def repo(tracking_dir, monkeypatch) -> Path:
    """A git repo with params.yaml committed (the store and its artifacts ignored), and no DVC experiment around."""
    monkeypatch.delenv(EXPERIMENT_ENV, raising=False)
    (tracking_dir / "params.yaml").write_text(yaml.safe_dump(make_params().model_dump(mode="json"), sort_keys=False))
    (tracking_dir / ".gitignore").write_text("mlflow.db\nmlruns/\n")
    env = os.environ | GIT
    sh(["git", "init", "-q"], tracking_dir, env)
    sh(["git", "add", "-A"], tracking_dir, env)
    sh(["git", "commit", "-qm", "main"], tracking_dir, env)
    return tracking_dir


def trained(label: str) -> Champion:
    """A run with a ``model`` artifact to register (what the registry points at), picked by a headline."""
    mlflow.set_experiment(make_params().tracking.experiment)
    with mlflow.start_run(run_name=label) as run:
        mlflow.log_text("a model", "model/MLmodel")
    return Champion(QUESTION, "which paradigm", run.info.run_id, label, "test/acc", 0.9, "best", "the best", "none")


def compare(winner: Champion):
    """What the compare stage registers for ``winner``, as the workspace it runs in makes it a main run or not."""
    params = make_params()
    why = why_experiment(DEFAULT_PARAMS_FILE, params.data)
    client = MlflowClient()
    return register_champions(client, params.tracking.experiment, [winner], "compare-run", why)[0]


def alias(name: str) -> dict[str, str]:
    """Which version each alias names."""
    return {key: str(version) for key, version in MlflowClient().get_registered_model(name).aliases.items()}


NAME = registered_name(make_params().tracking.experiment, QUESTION)


def test_a_dvc_experiment_moves_the_challenger_and_leaves_the_champion(repo, monkeypatch):
    main, tried = trained("finetune/full"), trained("finetune/lora")
    assert compare(main).line() == f"{NAME}@champion: version 1, finetune/full (new champion)"
    monkeypatch.setenv(EXPERIMENT_ENV, "tryit")
    entry = compare(tried)
    assert alias(NAME) == {CHAMPION: "1", CHALLENGER: "2"}
    assert entry.line() == (
        f"{NAME}@challenger: version 2, finetune/lora (new challenger); @champion stays (version 1): "
        f"`{PROMOTE}` makes it the champion"
    )
    version = MlflowClient().get_model_version(NAME, "2")
    assert version.tags[EXPERIMENT_TAG] == "DVC experiment tryit" and version.tags["run"] == "finetune/lora"
    assert compare(tried).moved is False  # the same winner again: no new version
    # an experiment that picks the champion's run leaves nothing to promote: no challenger, the champion as it was
    assert compare(main).line() == (
        f"{NAME}@challenger: none, the experiment's winner is @champion (version 1, finetune/full); "
        "the earlier challenger removed"
    )
    assert alias(NAME) == {CHAMPION: "1"}
    assert EXPERIMENT_TAG not in MlflowClient().get_model_version(NAME, "1").tags


def test_an_uncommitted_params_file_or_data_file_makes_an_experiment(repo):
    main, tried = trained("scratch"), trained("transfer")
    compare(main)
    with open(repo / "params.yaml", "a") as params:
        params.write("# trying another learning rate\n")
    assert compare(tried).alias == CHALLENGER
    assert alias(NAME) == {CHAMPION: "1", CHALLENGER: "2"}
    sh(["git", "commit", "-qam", "the new params"], repo, os.environ | GIT)
    assert compare(tried).line() == f"{NAME}@champion: version 2, transfer (new champion)"  # now the main run's
    assert EXPERIMENT_TAG not in MlflowClient().get_model_version(NAME, "2").tags  # the main run picked it
    csv = make_params(data={"source": "csv", "path": "data/mine.csv"}).data
    (repo / "data").mkdir()
    (repo / "data" / "mine.csv").write_text("label\n1\n")
    assert why_experiment(DEFAULT_PARAMS_FILE, csv) == "data/mine.csv differs from the commit (modified or untracked)"
    (repo / "data" / ".gitignore").write_text("/mine.csv\n")  # tracked by DVC (a .dvc file), not by git
    sh(["git", "add", "data/.gitignore"], repo, os.environ | GIT)
    sh(["git", "commit", "-qm", "data by dvc"], repo, os.environ | GIT)
    assert why_experiment(DEFAULT_PARAMS_FILE, csv) is None


def test_outside_a_git_repository_every_run_is_the_main_run(tracking_dir, monkeypatch):
    monkeypatch.delenv(EXPERIMENT_ENV, raising=False)
    (tracking_dir / "params.yaml").write_text("seed: 1\n")
    assert why_experiment(DEFAULT_PARAMS_FILE, make_params().data) is None
    assert compare(trained("scratch")).alias == CHAMPION


def test_the_report_names_an_experiments_winner_its_challenger():
    winner = Champion(
        QUESTION, "which paradigm", "run-id", "finetune/lora", "test/acc", 0.9, "best", "the best", "none"
    )
    sections = [Section("Fine-tuning", "", "", headline="LoRA leads", champion=winner)]
    assert "  - champion `finetune/lora`: the best; none" in headlines(sections)
    shown = headlines(sections, "DVC experiment tryit")
    assert "  - challenger `finetune/lora`: the best; none" in shown and "champion `" not in shown
    assert "An experiment (DVC experiment tryit)" in shown and PROMOTE in shown


def test_promote_makes_each_challenger_the_champion_and_removes_it(repo, monkeypatch):
    compare(trained("scratch"))
    monkeypatch.setenv(EXPERIMENT_ENV, "tryit")
    compare(trained("transfer"))
    monkeypatch.delenv(EXPERIMENT_ENV)

    def promote() -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "pipeline.compare", "--promote"]
        return subprocess.run(command, cwd=repo, env=os.environ, capture_output=True, text=True, timeout=300)

    done = promote()
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{NAME}@champion: version 2, transfer (promoted from @challenger; was version 1)\n"
    assert alias(NAME) == {CHAMPION: "2"}
    again = promote()
    assert again.returncode == 0, again.stderr
    experiment = make_params().tracking.experiment
    assert again.stdout == f"nothing to promote: no registered model of experiment {experiment} has a @challenger\n"
    assert promote_challengers(MlflowClient(), "another-experiment") == [
        "nothing to promote: no registered model of experiment another-experiment has a @challenger"
    ]


def test_promote_fails_in_one_line_on_an_unknown_option(repo):
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.compare", "--force"], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and done.stderr.startswith("error: python -m pipeline.compare: unrecognized")
    assert len(done.stderr.splitlines()) == 1
