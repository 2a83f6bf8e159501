"""Shared fixtures: tiny params, a real MLflow store in a temp dir, prepared data on disk."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional

import pytest
import torch
import yaml

from pipeline.params import Params, parse_params
from pipeline.paths import StagePaths

PROJECT_ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"hidden_sizes": [32], "channels": [8]},
    "trainer": {"max_epochs": 3, "batch_size": 64, "early_stopping_patience": None},
    "federated": {
        "rounds": 4,
        "personalization_steps": 2,
        "strategies": ["fedavg", "fedprox", "scaffold"],
        "partitions": ["iid", "dirichlet"],
    },
    "active_learning": {"rounds": 3, "query_size": 10, "train_steps": 20, "mc_samples": 4},
    "distill": {"student": {"hidden_sizes": [8], "channels": [4]}},
    "compress": {"sparsities": [0.5, 0.9]},
}


def deep_merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        merged[key] = (
            deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def make_params(**overrides) -> Params:
    """The schema's defaults made tiny, with ``overrides`` (nested dicts) on top.

    Independent of the project's params.yaml, which is the user's to tune.
    """
    return parse_params(deep_merge(TINY, overrides))


def stage_paths(stage: str, root: Path, out: Optional[str] = None, base: Optional[Path] = None) -> StagePaths:
    """``stage``'s paths in the workspace ``root`` (prepared data and base where dvc.yaml has them),
    writing under ``root/out`` when given; ``base``: another base checkpoint."""
    paths = StagePaths.of(stage, root)
    paths = paths.writing_to(root / out) if out is not None else paths
    return replace(paths, base=base) if base is not None else paths


@contextmanager
def pretrained_workspace(root: Path, params: Params) -> Iterator[Path]:
    """In ``root``, with its own MLflow store: the prepared data and a pretrained base where dvc.yaml puts them,
    for a module-scoped fixture; each test then writes its own outputs."""
    from pipeline.data.prepare import prepare_data, write_prepared
    from pipeline.paradigms.pretrain.run import run_pretrain

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        write_prepared(prepare_data(params), StagePaths.of("prepare", root).data)
        run_pretrain(params, StagePaths.of("pretrain", root))
        yield root


# What a test's own git repo needs of the project to run the pipeline with `dvc repro`.
PIPELINE_FILES = (
    "pipeline",
    "stages",
    "dvc.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots",
)


def pipeline_repo(root: Path, params: Params, tracking_uri: str) -> dict[str, str]:
    """The project's pipeline with ``params`` as params.yaml in the folder ``root`` (not yet a git repo); the
    environment its commands run in: this environment's ``python`` and ``dvc``, the tracking store, a git author."""
    for name in PIPELINE_FILES:
        source, target = PROJECT_ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    (root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        MLFLOW_TRACKING_URI=tracking_uri,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )


def sh(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """A command (git, dvc, a stage) that must succeed; its output, or a failure that shows it."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of this test process's own (tests/services.py); tests create and drop databases on it."""
    from tests.services import postgres_server

    with postgres_server() as server:
        yield server


# Who may do what on the team server (README's team recipe): alice runs the stages, bob browses, carol may write to
# the experiment but was given no registered model. alice's password is a sentinel that nothing the project
# writes may contain (tests/test_dvc_pipeline.py plants it in every channel a user can pass it through).
SENTINEL = "sentinel-Pw-7f3c9e1b"
TEAM = {"alice": ("EDIT", SENTINEL), "bob": ("READ", "bob-password-8d2a"), "carol": ("EDIT", "carol-password-4e6b")}
ADMIN_PASSWORD = "admin-password-5a1d"


@dataclass(frozen=True)
class TeamServer:
    """A team's tracking server: its URL (without credentials), proxied artifacts folder, TLS certificate, each
    user's password (``admin`` too), and its PostgreSQL databases (runs and models, users and permissions)."""

    url: str
    artifacts: Path
    certificate: Path
    passwords: dict[str, str]
    databases: tuple[str, str]
    experiment: str = "paradigm-lab"

    def uri(self, user: str, password: Optional[str] = None) -> str:
        """The URL with ``user``'s credentials in it."""
        from tests.services import with_credentials

        return with_credentials(self.url, user, password or self.passwords[user])

    def env(self, user: Optional[str], password: Optional[str] = None) -> dict[str, str]:
        """What a machine that runs stages as ``user`` sets (None: no credentials at all)."""
        found = {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_SERVER_CERT_PATH": str(self.certificate)}
        if user is not None:
            found |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password or self.passwords[user]}
        return found


@pytest.fixture(scope="module")
def team_server(tmp_path_factory, postgres):
    """A team's tracking server for the module's tests, as README's recipe sets it up: ``mlflow server`` on a
    PostgreSQL database of its own, proxying artifacts to a folder, with MLflow's basic-auth app (its users in a
    second database) behind TLS; the experiment made by the admin, with :data:`TEAM`'s permissions on it. This
    process trusts its certificate while the module runs."""
    from tests.services import Secured, add_team, mlflow_server

    root = tmp_path_factory.mktemp("team-server")
    database = f"mlflow_{root.name.lower().replace('-', '_')}"
    backend, users = postgres.create(database), postgres.create(f"{database}_auth")
    secured = Secured.make(root, users, ADMIN_PASSWORD)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(secured.certificate))
        with mlflow_server(backend, root / "artifacts", root / "mlflow-server.log", secured=secured) as url:
            passwords = {"admin": ADMIN_PASSWORD} | {user: password for user, (_, password) in TEAM.items()}
            databases = (database, f"{database}_auth")
            server = TeamServer(url, root / "artifacts", secured.certificate, passwords, databases)
            add_team(url, ADMIN_PASSWORD, server.experiment, TEAM)
            yield server
    postgres.drop(database)
    postgres.drop(f"{database}_auth")


@pytest.fixture
def tracking_dir(tmp_path, monkeypatch) -> Path:
    """Run in a temp dir with its own SQLite MLflow store (as a team's MLFLOW_TRACKING_URI would)."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # not the store an earlier test's stage opened
    # nor the experiment an earlier test set active, whose id this new store does not hold
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # which mlflow.set_experiment sets too
    return tmp_path


# The files whose tests run whole stages in processes of their own, longest first: on two workers (make test)
# they start first, so the rest of the suite runs beside them instead of after them.
LONGEST_FILES = ("test_dvc_pipeline.py", "test_distributed.py", "test_compare.py", "test_flower.py")


def pytest_collection_modifyitems(config, items):
    """The longest files first (their tests keep their order); GPU tests run only where CUDA is, and
    elsewhere are skipped, saying why."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _few_threads():
    """Two cores: keep torch from oversubscribing them."""
    torch.set_num_threads(1)
