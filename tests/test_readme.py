"""README's commands, in README's words, on a copy of the project: what a new user types after `make run`.

The copy is the project's own files with its own params.yaml, made small with the project's comment-keeping editor
(:func:`pipeline.config.edit.apply_to_params`), and every command runs in bash after README's
`source .venv/bin/activate`, from a PATH that does not hold the environment otherwise. The tracking store is
params.yaml's default, `sqlite:///mlflow.db`, as README's commands expect. Before the first `dvc repro` the copy
follows README's "Extending" steps word for word: its files, its registry line, its params sections, its stage
script and its `dvc.yaml` stage.

The copy keeps the paradigms README's commands reach (the target task's, whose champion is served; active learning's,
whose labelling tool is run): a stage costs its process's imports, and `dvc exp run -S trainer.lr=...` runs every
training stage again. The paradigms it leaves out are unregistered the way they were registered (their registry line,
params section and `dvc.yaml` stage), which is what the Extending steps check from the other side.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from ruamel.yaml import YAML
from sklearn.datasets import load_digits

from pipeline.config.edit import apply_to_params
from tests.conftest import PROJECT_ROOT, make_params, pipeline_repo, sh
from tests.services import free_port, wait_for

README = (PROJECT_ROOT / "README.md").read_text()
FENCE = re.compile(r"^(?P<indent> *)```(?P<language>\w*)\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
LEFT_OUT = ("multitask", "federated", "distill", "compress")  # paradigms no README command here reaches
# The project's params.yaml, made quick: fewer variants, fewer epochs (the target stages keep enough to learn).
SMALL = {
    "trainer.max_epochs": 10,
    "trainer.early_stopping_patience": None,
    "tracking.system_metrics": False,
    "finetune.strategies": ["full", "lora"],
    "transfer.trainer.max_epochs": 40,
    "finetune.trainer.max_epochs": 40,
    "scratch.trainer.max_epochs": 40,
    "active_learning.strategies": ["random", "margin"],
    "active_learning.rounds": 2,
    "active_learning.query_size": 10,
    "active_learning.train_steps": 20,
    "active_learning.mc_samples": 4,
}


def section(title: str, text: str = README) -> str:
    """The part of README under ``## <title>``, up to the next heading of that level."""
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced ``language`` blocks of ``text``, without the indentation of the list item they sit in."""
    return [
        re.sub(f"(?m)^{match['indent']}", "", match["body"])
        for match in FENCE.finditer(text)
        if match["language"] == language
    ]


def command(starting: str, text: str = README) -> str:
    """The line of a bash block of ``text`` that starts with ``starting``, without its comment."""
    lines = [line for block in code_blocks(text, "bash") for line in block.splitlines() if line.startswith(starting)]
    assert lines, f"no command starting {starting!r}"
    return lines[0].split("  #")[0].strip()


def follow_extending(root: Path) -> None:
    """README's "Extending" steps, as written, for its example paradigm ``narrow``."""
    steps = section("Extending: a new paradigm")
    for block in code_blocks(steps, "python"):  # steps 1 and 4: whole files, each headed by its path
        path, _, body = block.partition("\n")
        target = root / path.removeprefix("# ")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    registry = root / "pipeline/paradigms/__init__.py"  # step 2: the import and the BUILT_IN line
    imports = "from pipeline.paradigms import (\n"
    text = registry.read_text().replace(imports, imports + "    narrow,\n")
    built_in = text.index("BUILT_IN: tuple[Paradigm, ...] = (")
    closing = text.index("\n)", built_in)
    registry.write_text(text[:closing] + "\n    narrow.PARADIGM," + text[closing:])
    own, search_space = code_blocks(steps, "yaml")  # step 3: its section before compare's, its space under sweep
    params = (root / "params.yaml").read_text()
    params = params.replace("\ncompare:", f"\n{own.rstrip()}\n\ncompare:", 1)
    assert params.rstrip().splitlines()[-1].startswith("  "), "sweep: is not params.yaml's last section"
    (root / "params.yaml").write_text(params.rstrip() + "\n" + search_space)
    dvc_yaml = (root / "dvc.yaml").read_text()  # step 5: scratch's stage copied as narrow's, and compare's dep
    scratch = re.search(r"(?ms)^  scratch:\n.*?(?=^  \w+:\n)", dvc_yaml)[0]
    dvc_yaml = dvc_yaml.replace(scratch, scratch + scratch.replace("scratch", "narrow"), 1)
    compare = dvc_yaml.index("\n  compare:\n")
    last_metrics_dep = list(re.finditer(r"(?m)^      - metrics/[^\s:]+\n", dvc_yaml[compare:]))[-1]
    at = compare + last_metrics_dep.end()
    (root / "dvc.yaml").write_text(dvc_yaml[:at] + "      - metrics/narrow\n" + dvc_yaml[at:])


def leave_out(root: Path, stages: tuple[str, ...]) -> None:
    """Unregister ``stages`` in the copy: their lines in ``BUILT_IN``, their params sections (and the GPU profile's),
    their `dvc.yaml` stages, the comparison's deps on their metrics and the plots drawn from their files."""
    registry = root / "pipeline/paradigms/__init__.py"
    registry.write_text(re.sub(rf"(?m)^    ({'|'.join(stages)})\.PARADIGM,\n", "", registry.read_text()))
    yaml = YAML()
    for name in ("params.yaml", "params-gpu.yaml"):  # the params, and the GPU profile on top of them
        params = yaml.load(root / name)
        for stage in stages:
            params.pop(stage, None)
            params.get("sweep", {}).pop(stage, None)
        yaml.dump(params, root / name)
    dvc_yaml = (root / "dvc.yaml").read_text()
    named = "|".join(stages)
    for stage in stages:
        dvc_yaml = re.sub(rf"(?ms)^  {stage}:\n.*?(?=^  \w+:\n)", "", dvc_yaml)
        dvc_yaml = dvc_yaml.replace(f"      - metrics/{stage}\n", "")
    # the comparison's charts of those paradigms, and the top-level plots drawn from their files
    dvc_yaml = re.sub(rf"(?m)^      - plots/compare/({named})\w*\.csv:\n(?:          .*\n)*", "", dvc_yaml)
    head, _, plots = dvc_yaml.partition("\nplots:\n")
    entries = re.split(r"(?m)^(?=  - )", plots)
    kept = [entry for entry in entries if not re.search(rf"plots/(compare/)?({named})", entry)]
    (root / "dvc.yaml").write_text(f"{head}\nplots:\n{''.join(kept)}")


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    repro: str  # what the first `dvc repro` printed

    def run(self, line: str, timeout: int = 600) -> subprocess.CompletedProcess:
        """``line`` in bash, in the project's folder, after README's activation."""
        return subprocess.run(
            ["bash", "-c", f"source .venv/bin/activate && {line}"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, line: str, timeout: int = 600) -> str:
        done = self.run(line, timeout)
        assert done.returncode == 0, f"{line}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def client(self) -> MlflowClient:
        return MlflowClient(f"sqlite:///{self.root / 'mlflow.db'}")

    def aliases(self, alias: str) -> dict[str, str]:
        """Each registered model's version under ``alias``."""
        client = self.client()
        found = {}
        for model in client.search_registered_models():
            if alias in model.aliases:
                found[model.name] = model.aliases[alias]
        return found


def activation(root: Path) -> None:
    """``.venv`` in the copy is this environment, so that README's `source .venv/bin/activate` activates it."""
    own = Path(sys.prefix)
    if (own / "bin" / "activate").is_file():
        (root / ".venv").symlink_to(own, target_is_directory=True)
    else:  # an environment without an activate script (installed elsewhere): one that puts its bin first
        (root / ".venv" / "bin").mkdir(parents=True)
        (root / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("readme")
    env = pipeline_repo(root, make_params(), "")
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")  # the real file, comments and all
    shutil.copy(PROJECT_ROOT / "params-gpu.yaml", root / "params-gpu.yaml")
    apply_to_params(root / "params.yaml", SMALL)
    leave_out(root, LEFT_OUT)
    activation(root)
    del env["MLFLOW_TRACKING_URI"]  # params.yaml's default store, as README's commands expect
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != bin_dir)  # only activation adds it
    follow_extending(root)
    sh(["git", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "the project, and the narrow paradigm from README"], root, env)
    project = Project(root, env, "")
    project.repro = project.ok("dvc repro")
    return project


def test_extending_steps_give_a_stage_that_trains_and_is_compared(project):
    assert "Running stage 'narrow'" in project.repro
    headline = json.loads((project.root / "metrics/narrow/narrow.json").read_text())
    assert headline["acc"] > 0.3  # ten classes: chance is 0.1
    assert "Narrow vs scratch" in (project.root / "reports/comparison.md").read_text()
    for plot in ("history.csv", "memory.csv"):
        assert (project.root / "plots/narrow" / plot).stat().st_size > 0


def test_the_pyfunc_snippet_predicts_digits(project):
    snippet = code_blocks(section("Quick start"), "bash")
    loading = next(block for block in snippet if "pyfunc.load_model" in block)
    line = loading.split("\nmlflow models serve")[0]
    said = project.ok(line)
    assert len(re.findall(r"(?m)^\d+\s+\d+$", said)) == 5, said  # five rows: index and label


def test_mlflow_models_serve_answers_an_http_request(project):
    line = command("mlflow models serve")
    assert "models:/paradigm-lab-target-task@champion" in line
    port = free_port()
    line = line.replace("-p 5001", f"-p {port}")
    server = subprocess.Popen(
        ["bash", "-c", f"source .venv/bin/activate && exec {line}"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", server, 120)
        digits = load_digits()
        body = json.dumps({"inputs": digits.images[:20, None].tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.load(response)["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    labels = np.array([int(row["label"]) for row in predictions])
    assert len(labels) == 20 and np.mean(labels == digits.target[:20]) > 0.3


def test_dvc_metrics_show_fits_a_terminal(project):
    shown = project.ok("dvc metrics show")
    widest = max(len(line) for line in shown.splitlines())
    assert widest < 200, shown
    assert "metrics/finetune/lora.json" in shown


def test_profile_prints_a_line_dvc_reads(project):
    line = command("python -m pipeline.profile params-gpu.yaml", (PROJECT_ROOT / "docs/scale.md").read_text())
    said = project.ok(line)
    assert said.strip().splitlines()[-1].startswith("dvc exp run -S")


def test_annotate_exports_a_query_and_says_where_the_session_stands(project):
    docs = (PROJECT_ROOT / "docs/active-learning.md").read_text()
    said = project.ok(command("python -m pipeline.paradigms.active_learning.annotate export", docs))
    assert (project.root / "labelling/round_01/query.csv").is_file()
    assert "python -m pipeline.paradigms.active_learning.annotate import" in said  # the next step, as typed
    status = project.ok(command("python -m pipeline.paradigms.active_learning.annotate status", docs))
    assert "1 rounds" not in status and "round" in status


def test_the_extending_sweep_runs_and_dvc_plots_renders(project):
    line = command("python -m pipeline.sweep narrow", section("Extending: a new paradigm"))
    project.ok(re.sub(r"--n-trials \d+", "--n-trials 1", line))
    project.ok(command("dvc plots show", section("Extending: a new paradigm")))
    rendered = (project.root / "dvc_plots" / "index.html").read_text()
    assert "plots/narrow/history.csv" in rendered


def test_the_sweeps_printed_line_is_one_dvc_accepts(project):
    line = command("python -m pipeline.sweep finetune")
    said = project.ok(re.sub(r"--n-trials \d+", "--n-trials 1", line))
    printed = [row.strip() for row in said.splitlines() if row.strip().startswith("dvc exp run")]
    assert printed, said
    # Queued, DVC reads the line's -S overrides and applies them to params.yaml as a run would (the form it refuses
    # fails here), without a second run of the stages: the experiment below runs one whole.
    project.ok(f"{printed[-1]} --queue && dvc queue remove --all")


def test_an_experiment_on_the_trainer_moves_no_champion(project):
    champions = project.aliases("champion")
    assert "paradigm-lab-target-task" in champions and "paradigm-lab-finetune" in champions, champions
    project.ok(command("dvc exp run -S trainer.lr=0.003"))
    assert project.aliases("champion") == champions  # every one on its earlier version
    assert project.aliases("challenger")  # the experiment's winners, where they differ from the champions
    said = project.ok("dvc exp show --no-pager " + command("dvc exp show").removeprefix("dvc exp show"))
    assert max(len(line) for line in said.splitlines()) < 200, said
