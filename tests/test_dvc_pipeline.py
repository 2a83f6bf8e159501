"""`dvc repro` end to end in a temporary git repo: runs, skips when nothing changed, re-runs only what did."""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from mlflow.tracking import MlflowClient

from pipeline.data.scaling import Scaling
from pipeline.failures import FAULT_EXIT
from pipeline.paradigms import paradigms
from pipeline.tracking.contract import CONTRACT_METRICS, CONTRACT_TAGS, TRAINING_ONLY
from pipeline.tracking.mlflow_model import AGREEMENT_METRIC
from pipeline.tracking.outputs import HEADLINE
from pipeline.tracking.prepared_data import HEADLINE as PREPARED
from pipeline.tracking.runs import PREDICTIONS_ARTIFACT
from tests.conftest import SENTINEL, TeamServer, make_params, pipeline_repo, sh
from tests.services import free_port, wait_for

TRAINING = tuple(entry.stage for entry in paradigms())
STAGES = ("prepare", *TRAINING, "compare")


def secret_channels(server: TeamServer) -> dict[str, str]:
    """alice's password (the sentinel) in every channel a user can pass a credential through: the tracking URI,
    the registry URI, MLflow's credential variables, and a cloud key the environment happens to hold."""
    return {
        "MLFLOW_TRACKING_URI": server.uri("alice"),
        "MLFLOW_REGISTRY_URI": server.uri("alice"),
        "MLFLOW_TRACKING_USERNAME": "alice",
        "MLFLOW_TRACKING_PASSWORD": SENTINEL,
        "MLFLOW_TRACKING_SERVER_CERT_PATH": str(server.certificate),
        "AWS_SECRET_ACCESS_KEY": SENTINEL,
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory, team_server):
    """The pipeline run by `dvc repro` in a new git repo, every stage logging to the team's tracking server as alice,
    whose password is in every channel (:func:`secret_channels`); the third item holds all the commands printed."""
    root = tmp_path_factory.mktemp("repo")
    env = pipeline_repo(root, make_params(sweep=SWEEP), team_server.url) | secret_channels(team_server)
    sh(["git", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "pipeline"], root, env)
    # Every training stage is first killed (kill -9) mid-run; dvc repro must then complete as if nothing happened.
    said: list[str] = []  # everything the commands printed, stdout and stderr

    def repro(*target: str) -> str:
        result = sh(["dvc", "repro", *target], root, env)
        said.append(said_by(result))
        return result.stdout

    outputs = [repro("prepare")]
    assert kill_stages(root, env, {"pretrain": 1}, said) == ["pretrain"]
    outputs.append(repro("pretrain"))
    after_pretrain = [stage for stage in TRAINING if stage not in ("pretrain", *AFTER_DISTILL)]
    assert kill_stages(root, env, {stage: KILL_AT.get(stage, 1) for stage in after_pretrain}, said) == after_pretrain
    outputs.append(repro("distill"))  # the teacher compress starts from
    killed = kill_stages(root, env, {stage: KILL_AT.get(stage, 1) for stage in AFTER_DISTILL}, said)
    assert killed == list(AFTER_DISTILL)
    assert leftovers(root) and running_runs(env)  # what the kills left: the repro below must deal with it
    outputs.append(repro())
    return root, env, subprocess.CompletedProcess([], 0, "".join(outputs), "".join(said))


def said_by(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


# Which progress line (epoch or round) of a stage's run the fault-injection kill comes at: the first
# variant's first epoch, or into a later variant, once earlier runs finished and wrote their outputs.
KILL_AT = {"finetune": 4, "multitask": 2, "federated": 3, "active_learning": 2, "compress": 2}
AFTER_DISTILL = ("compress",)  # stages that read distill's teacher: killed once it is there
PROGRESS = re.compile(r"\] (epoch|round) \d+/\d+")
SWEEP = {"scratch": {"space": {"scratch.trainer.lr": {"type": "float", "low": 1e-3, "high": 1e-2}}}}


def kill_stages(root: Path, env: dict, at: dict[str, int], said: list[str]) -> list[str]:
    """Start the stages together (as `python -m stages.<stage>`, what dvc.yaml runs) and SIGKILL each at its
    ``at[stage]``-th progress line; the stages that were killed (not those that ended first). What they printed on
    stderr is added to ``said``."""
    started = {
        stage: subprocess.Popen(
            [sys.executable, "-m", f"stages.{stage}"],
            cwd=root,
            env=env | {"PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stage in at
    }

    def watch(stage: str) -> None:
        seen = 0
        for line in started[stage].stderr:
            said.append(line)
            seen += bool(PROGRESS.search(line))
            if seen == at[stage]:
                started[stage].send_signal(signal.SIGKILL)
                break
        said.append(started[stage].stderr.read())

    watchers = [threading.Thread(target=watch, args=(stage,)) for stage in started]
    for thread in watchers:
        thread.start()
    for process in started.values():
        process.wait(timeout=600)
    for thread in watchers:
        thread.join()
    return [stage for stage, process in started.items() if process.returncode == -signal.SIGKILL]


def leftovers(root: Path) -> list[Path]:
    """Temporary outputs (pipeline.io's ``.<name>.<owner>.<random>.tmp``) anywhere in the workspace."""
    return [path for path in root.rglob(".*.tmp*") if ".git" not in path.parts and ".dvc" not in path.parts]


def running_runs(env: dict) -> list[str]:
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [run.info.run_id for run in client.search_runs(experiments, "attributes.status = 'RUNNING'")]


def ran(output: str) -> list[str]:
    return [stage for stage in STAGES if f"Running stage '{stage}'" in output]


def test_first_repro_runs_every_stage_and_writes_outputs(repo):
    root, _, first = repo
    assert sorted(ran(first.stdout)) == sorted(STAGES)
    for path in [
        "data/prepared/source.npz",
        "data/prepared/federated.npz",
        "models/pretrain/base.pt",
        "models/transfer/model.pt",
        "models/finetune/full.pt",
        "models/finetune/lora/adapter_model.safetensors",
        "models/scratch/model.pt",
        "plots/finetune/history.csv",
        "plots/scratch/memory.csv",
        "models/multitask/multitask.pt",
        "models/multitask/single_task-parity.pt",
        "plots/multitask/loss_weights.csv",
        "models/federated/iid-fedavg.pt",
        "models/federated/centralized.pt",
        "plots/federated/rounds.csv",
        "models/active_learning/random.pt",
        "models/active_learning/margin.pt",
        "plots/active_learning/curves.csv",
        "models/distill/teacher.pt",
        "models/distill/distilled.pt",
        "plots/distill/models.csv",
        "models/compress/prune-0.9.pt",
        "models/compress/int8.pt",
        "plots/compress/variants.csv",
        "plots/compare/deployment.csv",
        "metrics/prepare.json",
        "metrics/pretrain/base.json",
        "metrics/finetune/lora.json",
        "metrics/federated/dirichlet/fedprox.json",
        "plots/pretrain/history.csv",
        "dvc.lock",
        "reports/comparison.md",
        "reports/comparison.csv",
        "reports/figures/federated_rounds.png",
        "plots/compare/runs.csv",
    ]:
        assert (root / path).is_file(), path
    assert list((root / "metrics" / "compare").glob("*.json"))  # a champion or a file saying there is none


def test_stages_killed_mid_run_leave_nothing_once_rerun(repo):
    """After the kills of the fixture and one `dvc repro`: no temporary output remains, no run is left RUNNING
    (each killed one is marked KILLED), and the comparison read only finished runs."""
    root, env, _ = repo
    assert leftovers(root) == []
    assert running_runs(env) == []
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    killed = client.search_runs(experiments, "attributes.status = 'KILLED'")
    assert {run.data.tags["stage"] for run in killed} == set(TRAINING)
    assert all("killed" in run.data.tags for run in killed)
    compared = set(pd.read_csv(root / "reports" / "comparison.csv")["run_id"])
    killed_ids = {run.info.run_id for run in killed}
    assert compared and killed_ids.isdisjoint(compared)
    assert killed_ids.isdisjoint(
        run_id for stage in STAGES for ids in listed_ids(root, stage).values() for run_id in ids
    )


def test_metrics_files_name_runs_in_the_store(repo):
    root, env, _ = repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    for stage in STAGES:
        ids = [run_id for found in listed_ids(root, stage).values() for run_id in found]
        assert ids, stage
        for run_id in ids:
            run = client.get_run(run_id)
            assert run.info.status == "FINISHED" and run.data.tags["stage"] == stage
            assert run.data.tags["git_commit"] == sh(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
            assert run.data.tags["git_dirty"] == "false"  # params.yaml as committed


def test_every_training_run_carries_the_whole_run_contract(repo):
    """Whatever trained it (a Lightning fit, federated rounds, active-learning rounds): one list of required keys."""
    root, env, _ = repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    checked = 0
    for stage in TRAINING:
        for variant, run_id in current_runs(root, stage).items():
            run = client.get_run(run_id)
            # a model compressed after training (int8, fp16) has no training state to measure
            required = set(CONTRACT_METRICS) - (TRAINING_ONLY if run.data.tags["optimizer"] == "none" else set())
            assert required <= set(run.data.metrics), (stage, variant, required - set(run.data.metrics))
            assert set(CONTRACT_TAGS) <= set(run.data.tags), (stage, variant, set(CONTRACT_TAGS) - set(run.data.tags))
            artifacts = {a.path for d in ("checkpoint", "plots") for a in client.list_artifacts(run.info.run_id, d)}
            assert any(path.startswith("checkpoint/") for path in artifacts) and any(
                "confusion_matrix" in p for p in artifacts
            ), variant
            # an MLflow Model that answers the test split as the trained network did, and the data it used
            assert [m.name for m in logged_models(client, run)] == ["model"], variant
            # an int8 model is served with its weights dequantised (torch.export cannot trace int8 layers)
            exact = run.data.tags["precision"] != "int8"
            assert run.data.metrics[AGREEMENT_METRIC] >= (1.0 if exact else 0.95), (stage, variant)
            inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
            assert set(inputs) == {"training", "validation", "testing"}, variant
            task = json.loads(inputs["testing"].source)["uri"]
            assert task.startswith("data/prepared/") and inputs["testing"].name == f"{Path(task).stem}/test"
            assert json.loads(inputs["testing"].profile)["features_shape"][0] > 0 and inputs["testing"].digest
            if run.info.end_time - run.info.start_time > 5000:  # MLflow's monitor samples once a second
                assert "system/cpu_utilization_percentage" in run.data.metrics, (stage, variant)
            checked += 1
    assert checked >= 20  # every variant of every paradigm in the default pipeline


def logged_models(client: MlflowClient, run) -> list:
    return [client.get_logged_model(output.model_id) for output in run.outputs.model_outputs]


def metrics_files(root: Path, stage: str) -> dict[str, dict]:
    """What ``stage`` wrote for DVC: per variant (per question for compare) its file ``metrics/<stage>/<name>.json``;
    prepare's one file as ``splits``."""
    if stage == "prepare":
        return {"splits": json.loads((root / "metrics" / "prepare.json").read_text())}
    folder = root / "metrics" / stage
    return {path.relative_to(folder).with_suffix("").as_posix(): json.loads(path.read_text()) for path in
            folder.rglob("*.json")}  # fmt: skip


def listed_ids(root: Path, stage: str) -> dict[str, list[str]]:
    """Variant -> the run ids behind it (its own seed's first), as ``stage``'s current outputs list them."""
    return {name: written["run_ids"] for name, written in metrics_files(root, stage).items()}


def current_runs(root: Path, stage: str) -> dict[str, str]:
    """Variant -> run id of its own seed, of the runs behind ``stage``'s current outputs."""
    return {variant: ids[0] for variant, ids in listed_ids(root, stage).items()}


def raw_test_split(root: Path, client: MlflowClient, run_id: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test inputs of the run's dataset in the dataset's own units (before data.scale), and per output the
    class index the trained network predicted for each (the run's predictions artifact)."""
    run = client.get_run(run_id)
    testing = next(i.dataset for i in run.inputs.dataset_inputs if i.tags[0].value == "testing")
    task = root / json.loads(testing.source)["uri"]
    raw = Scaling.beside(task).invert(np.load(task)["X_test"])
    with tempfile.TemporaryDirectory() as folder:
        answers = dict(np.load(client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, folder)))
    return raw, {key.removesuffix("_pred"): value for key, value in answers.items() if key.endswith("_pred")}


def predicted_indices(table: pd.DataFrame, output: str) -> np.ndarray:
    """Per example, the class index the served model picked for ``output`` (its probability columns in order)."""
    probabilities = table[[c for c in table.columns if c.startswith(f"{output}_p_")]].to_numpy()
    return probabilities.argmax(axis=1)


SERVED = [("finetune", "lora"), ("multitask", "multitask"), ("federated", None), ("active_learning", None)]


def served_runs(root: Path) -> list[str]:
    """A run of each kind of trained network: a merged adapter, a multi-task network, federated, active learning."""
    chosen = []
    for stage, variant in SERVED:
        runs = current_runs(root, stage)
        chosen.append(runs[variant] if variant else next(iter(runs.values())))
    return chosen


def test_logged_models_predict_in_a_new_process_without_the_project(repo, tmp_path):
    """`mlflow.pyfunc.load_model("runs:/<id>/model")` in a process that imports nothing of the project answers
    the raw test split as the trained network did, output by output."""
    root, env, _ = repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    expected = {}
    for run_id in served_runs(root):
        raw, expected[run_id] = raw_test_split(root, client, run_id)
        np.save(tmp_path / f"{run_id}.npy", raw)
    script = (
        "import sys, mlflow, numpy as np\n"
        "for run_id in sys.argv[1:]:\n"
        "    model = mlflow.pyfunc.load_model(f'runs:/{run_id}/model')\n"
        "    model.predict(np.load(f'{run_id}.npy')).to_csv(f'{run_id}.csv', index=False)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('pipeline', 'stages')], 'imported the project'\n"
    )
    sh([sys.executable, "-c", script, *expected], tmp_path, env | {"PYTHONPATH": ""})
    for run_id, outputs in expected.items():
        table = pd.read_csv(tmp_path / f"{run_id}.csv")
        for output, indices in outputs.items():
            assert np.array_equal(predicted_indices(table, output), indices), (run_id, output)


def test_mlflow_models_serve_answers_invocations_with_the_same_predictions(repo):
    root, env, _ = repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    run_id = current_runs(root, "finetune")["lora"]
    raw, expected = raw_test_split(root, client, run_id)
    port = free_port()
    command = ["mlflow", "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", server, 120)
        body = json.dumps({"inputs": raw.tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            table = pd.DataFrame(json.load(response)["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(table) == len(raw)
    assert np.array_equal(predicted_indices(table, "label"), expected["label"])
    classes = np.load(root / "data" / "prepared" / "target.npz")["classes"]
    assert np.array_equal(table["label"].to_numpy(), classes[expected["label"]])


# Each question the comparison registers a champion for, and the stages whose runs it weighs.
CHAMPIONS = {
    "target-task": ("transfer", "finetune", "scratch"),
    "finetune": ("finetune",),
    "federated": ("federated",),
    "active-learning": ("active_learning",),
    "multitask": ("multitask",),
    "distill": ("distill",),
    "compress": ("compress",),
}


def registered_questions(root: Path, client: MlflowClient) -> list[str]:
    """The questions with a champion: those whose stages did not warn that their results are near chance (then
    the report names no winner and nothing is registered)."""
    warned = {
        stage
        for stage in TRAINING
        for run_id in current_runs(root, stage).values()
        if client.get_run(run_id).data.tags.get("sanity")
    }
    return [question for question, stages in CHAMPIONS.items() if not warned & set(stages)]


def test_compare_registers_each_questions_champion_and_a_rerun_adds_no_version(repo):
    root, env, _ = repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    listed = {run_id for stage in TRAINING for run_id in current_runs(root, stage).values()}

    questions = registered_questions(root, client)
    assert len(questions) >= 2  # the tiny pipeline leaves some stages near chance: those register nothing
    registered = {model.name for model in client.search_registered_models()}
    assert registered == {f"paradigm-lab-{question}" for question in questions}

    def champions() -> dict[str, tuple[str, int]]:
        found = {}
        for question in questions:
            name = f"paradigm-lab-{question}"
            version = client.get_model_version_by_alias(name, "champion")
            assert version.run_id in listed and version.tags["question"] == question
            # the headline's rule: active learning ranks by the area under its learning curve, the rest by accuracy
            assert version.tags["metric"] == ("al/alc" if question == "active-learning" else "test/acc")
            assert version.tags["comparison"] and version.tags["chosen_by"] and version.tags["tie_break"]
            assert f"champion `{version.tags['run']}`" in (root / "reports" / "comparison.md").read_text()
            found[name] = (version.version, len(client.search_model_versions(f"name = '{name}'")))
        return found

    before = champions()
    sh(["dvc", "repro", "--force", "--single-item", "compare"], root, env)
    assert champions() == before  # same winners: the alias stays, no version is added


def test_a_registry_that_refuses_fails_compare_in_one_line(repo):
    root, env, _ = repo
    dead = "http://127.0.0.1:1"
    started = time.perf_counter()
    failed = subprocess.run(
        [sys.executable, "-m", "stages.compare"],
        cwd=root,
        env=env | {"MLFLOW_REGISTRY_URI": dead},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.perf_counter() - started < 60
    assert failed.returncode == FAULT_EXIT, failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the MLflow model registry {dead}") and "tracking.register: false" in last
    assert "Traceback" not in failed.stderr


def test_second_repro_has_nothing_to_do(repo):
    root, env, _ = repo
    again = sh(["dvc", "repro"], root, env)
    assert ran(again.stdout) == []
    assert "Data and pipelines are up to date" in again.stdout


def test_forced_rerun_in_a_new_process_gives_identical_test_metrics(repo):
    root, env, _ = repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    kept = ("test/acc", "test/f1_macro", "test/loss", "val/best_loss", "val/loss", "comm/bytes_total", "al/alc")

    def logged(run_id: str) -> dict[str, float]:
        return {key: value for key, value in client.get_run(run_id).data.metrics.items() if key in kept}

    for stage in ("pretrain", "federated", "active_learning"):  # a Lightning fit, federated and active-learning rounds
        before = metrics_files(root, stage)
        sh(["dvc", "repro", "--force", "--single-item", stage], root, env)
        after = metrics_files(root, stage)
        assert set(after) == set(before)
        for variant in before:
            old, new = before[variant].pop("run_ids"), after[variant].pop("run_ids")
            assert set(old).isdisjoint(new) and len(old) == len(new)
            assert "test/acc" in logged(new[0]), (stage, variant)
            assert [logged(run_id) for run_id in new] == [logged(run_id) for run_id in old], (stage, variant)
            before[variant].pop("fit_s", None), after[variant].pop("fit_s", None)  # a timing
            assert after[variant] == before[variant], (stage, variant)
    # byte-identical outputs: nothing downstream is stale but the comparison, which reads the new runs
    assert list(json.loads(sh(["dvc", "status", "--json"], root, env).stdout)) == ["compare"]


def test_changing_finetune_params_reruns_only_finetune(repo):
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["finetune"]["strategies"] = ["lora"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rerun = sh(["dvc", "repro"], root, env)
    assert ran(rerun.stdout) == ["finetune", "compare"]
    assert sorted(p.name for p in (root / "models" / "finetune").iterdir()) == ["lora"]
    assert set(listed_ids(root, "finetune")) == {"lora"}  # the other strategies' files are gone


def test_a_sweeps_applied_params_make_only_the_stage_that_reads_them_stale(repo):
    """What `dvc repro` would run next (as the finetune test above runs it): only the stage whose params changed."""
    from pipeline.config.edit import apply_to_params

    root, env, _ = repo
    before = (root / "params.yaml").read_text()
    apply_to_params(root / "params.yaml", {"finetune.lora.r": 3, "finetune.trainer.lr": 0.002})
    stale = json.loads(sh(["dvc", "status", "--json"], root, env).stdout)
    assert stale == {"finetune": [{"changed deps": {"params.yaml": {"finetune": "modified"}}}]}
    (root / "params.yaml").write_text(before)


def test_changing_pretrain_params_makes_what_starts_from_the_base_stale(repo):
    """Pretrain re-run with new params: `dvc status` then names exactly the stages whose inputs it changed (what
    `dvc repro` would run next; running them is DVC's part, seen in the finetune test above)."""
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["pretrain"]["trainer"] = {"max_epochs": 2}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(sh(["dvc", "repro", "pretrain"], root, env).stdout) == ["pretrain"]
    history = (root / "plots" / "pretrain" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # header + the two epochs now asked for
    stale = json.loads(sh(["dvc", "status", "--json"], root, env).stdout)
    # not prepare, not scratch; multitask, federated and active learning too: they may start from the base
    starts_from_base = ("transfer", "finetune", "multitask", "federated", "active_learning")
    assert sorted(stale) == sorted([*starts_from_base, "compare"])
    for stage in starts_from_base:
        assert stale[stage] == [{"changed deps": {"models/pretrain/base.pt": "modified"}}], stage


def test_dvc_metrics_show_is_a_few_columns_and_each_row_the_mean_of_its_runs(repo):
    """A row per variant, each with a few short numbers: the mean over the variant's runs of what MLflow holds."""
    root, env, _ = repo
    table = sh(["dvc", "metrics", "show"], root, env).stdout.splitlines()
    assert len(table) > len(TRAINING) and max(len(line) for line in table) < 200, max(table, key=len)
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], root, env).stdout)[""]["data"]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    checked = 0
    for stage in TRAINING:
        for variant, written in metrics_files(root, stage).items():
            row = shown[f"metrics/{stage}/{variant}.json"]["data"]
            assert row == {key: value for key, value in written.items() if key != "run_ids"}  # every number, no list
            runs = [client.get_run(run_id).data.metrics for run_id in written["run_ids"]]
            for key, (metric, factor, _) in HEADLINE.items():
                logged = [run[metric] * factor for run in runs if metric in run]
                assert (key in row) == bool(logged), (stage, variant, key)
                if logged:
                    mean = statistics.fmean(logged)
                    assert row[key] == pytest.approx(mean, rel=1e-3, abs=5e-5), (stage, variant, key)
                    checked += 1
    assert checked >= 20 * 5
    prepared = shown["metrics/prepare.json"]["data"]
    run = client.get_run(metrics_files(root, "prepare")["splits"]["run_ids"][0]).data.metrics
    assert prepared == {key: pytest.approx(run[metric], abs=5e-5) for key, metric in PREPARED.items()}


def test_dvc_shows_metrics_and_renders_plots(repo):
    root, env, _ = repo
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], root, env).stdout)[""]["data"]
    assert "acc" in shown["metrics/pretrain/base.json"]["data"]
    labels = set(pd.read_csv(root / "reports" / "comparison.csv")["label"])
    for question, written in metrics_files(root, "compare").items():
        if "winner" in written:  # the champion's label; the compare run's id is a list: left out of the table
            assert shown[f"metrics/compare/{question}.json"]["data"] == {"winner": written["winner"]}
            assert written["winner"] in labels
    sh(["dvc", "plots", "show", "-o", "dvc_plots"], root, env)
    html = (root / "dvc_plots" / "index.html").read_text()
    assert "pretrain learning curves" in html
    assert "target task: validation accuracy per epoch" in html and '"variant": "scratch"' in html
    assert "multitask vs separate models: test accuracy per task" in html and '"task": "parity"' in html
    assert "compare: federated global test accuracy per round" in html and '"variant": "dirichlet/fedprox"' in html
    assert "compare: active learning test accuracy vs labels used" in html and '"variant": "bald"' in html
    assert "compare: test accuracy vs trainable parameters" in html and '"paradigm": "active_learning"' in html
    assert "compare: estimated vs measured model-state memory" in html
    assert "compare: multitask vs separate models" in html and "parity: separate" in html
    assert "federated_rounds.png" in html  # the report's figures render too
    errors = json.loads(sh(["dvc", "plots", "show", "--json"], root, env).stdout).get("errors")
    assert not errors, errors


def test_the_team_server_on_postgresql_holds_every_stage_its_artifacts_and_the_reports_links(repo, team_server):
    """What `mlflow ui` shows of the team's server, read through its REST API: every stage's runs and metrics, the
    compare run and its report, every model; the artifacts in the server's folder; the report linking to it."""
    root, env, _ = repo
    url, artifacts = team_server.url, team_server.artifacts
    base = f"{url}/api/2.0/mlflow"

    def get(address: str, body: dict | None = None) -> requests.Response:
        """As alice, trusting only the server's own certificate."""
        response = requests.request(
            "GET" if body is None else "POST",
            address,
            json=body,
            auth=("alice", SENTINEL),
            verify=str(team_server.certificate),
            timeout=10,
        )
        response.raise_for_status()
        return response

    def call(path: str, body: dict | None = None) -> dict:
        return get(f"{base}/{path}", body).json()

    experiment = call("experiments/get-by-name?experiment_name=paradigm-lab")["experiment"]
    runs = call("runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    stages = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        stages.setdefault(tags["stage"], set()).update(m["key"] for m in run["data"].get("metrics", []))
    assert set(STAGES) <= set(stages)
    assert {"test/acc", "memory/peak_bytes", "memory/estimated_train_bytes", "val/acc"} <= stages["pretrain"]
    # the comparison: the compare run of metrics/compare/, its report, tables and figures as artifacts
    (compare_id,) = {run_id for ids in listed_ids(root, "compare").values() for run_id in ids}
    compare = call(f"runs/get?run_id={compare_id}")["run"]
    assert {t["key"]: t["value"] for t in compare["data"]["tags"]}["stage"] == "compare"
    assert "memory/runs_outside_tolerance" in {m["key"] for m in compare["data"]["metrics"]}
    listed = {f["path"] for f in call(f"artifacts/list?run_id={compare_id}&path=comparison")["files"]}
    assert {"comparison/comparison.md", "comparison/every_run.json", "comparison/figures"} <= listed
    figures = {f["path"] for f in call(f"artifacts/list?run_id={compare_id}&path=comparison/figures")["files"]}
    assert "comparison/figures/accuracy_vs_trainable_params.png" in figures
    report = get(f"{url}/get-artifact?path=comparison/comparison.md&run_uuid={compare_id}").text
    assert "## Memory check" in report and all(
        f"| {stage}" in report for stage in ("pretrain", "federated/", "active_learning/")
    )
    # the UI opens the experiment on its runs (a model-training experiment), the compare run with its headlines
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
    note = {t["key"]: t["value"] for t in compare["data"]["tags"]}["mlflow.note.content"]
    assert note.startswith("## Paradigm comparison") and "Transfer vs fine-tune vs scratch" in note
    # each question's champion in the registry, and its model's files
    for question in registered_questions(root, MlflowClient(env["MLFLOW_TRACKING_URI"])):
        found = call(f"registered-models/alias?name=paradigm-lab-{question}&alias=champion")["model_version"]
        assert found["aliases"] == ["champion"] and found["run_id"]
    models, page = [], {}
    while page is not None:  # every page of the experiment's logged models
        found = call("logged-models/search", {"experiment_ids": [experiment["experiment_id"]], **page})
        models += found.get("models", [])
        page = {"page_token": found["next_page_token"]} if found.get("next_page_token") else None
    current = {run_id for stage in TRAINING for run_id in current_runs(root, stage).values()}
    assert current <= {model["info"]["source_run_id"] for model in models}  # every run behind the outputs
    model_id = models[0]["info"]["model_id"]
    files = {f["path"] for f in call(f"logged-models/{model_id}/artifacts/directories")["files"]}
    assert {"MLmodel", "artifacts"} <= files, files
    # proxied artifacts: written by the server into its own folder, none beside the stages
    assert list(artifacts.glob(f"*/{compare_id}/artifacts/comparison/comparison.md"))
    assert not (root / "mlartifacts").exists() and not (root / "mlruns").exists()
    report = (root / "reports" / "comparison.md").read_text()
    links = re.findall(r"\]\((http[^)]+)\)", report)
    assert links and all(link.startswith(f"{url}/#/experiments/") for link in links), links[:3]


def test_registering_champions_needs_permission_on_the_registered_models(repo, team_server):
    """carol may write to the experiment but was granted none of the registered models alice's compare made:
    compare fails at the registry, in one line, before it writes any output."""
    root, env, _ = repo
    written = {
        path: path.read_bytes() for folder in ("reports", "metrics/compare") for path in (root / folder).rglob("*.*")
    }
    carol = secret_channels(team_server) | {
        "MLFLOW_TRACKING_URI": team_server.url,
        "MLFLOW_REGISTRY_URI": team_server.url,
        **team_server.env("carol"),
    }
    failed = subprocess.run(
        [sys.executable, "-m", "stages.compare"], cwd=root, env=env | carol, capture_output=True, text=True, timeout=300
    )
    assert failed.returncode == FAULT_EXIT, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: 403: user carol may not change the model registry: registering champions needs EDIT on the registered "
        f"models (or on the workspace, to create them); ask the admin of the MLflow tracking server {team_server.url}"
    ], failed.stderr
    assert {path: path.read_bytes() for path in written} == written


def test_no_password_reaches_a_file_the_store_or_the_terminal(repo, team_server, postgres):
    """alice's password, planted in every channel (:func:`secret_channels`) and in a sweep's storage URL, after the
    pipeline, its comparison and a sweep (whose workers log to the server as alice): in no file the project wrote,
    nowhere in the MLflow store (its whole databases: runs' params, tags and metrics, registered models and their
    versions; and every artifact), nowhere in what the commands printed, a refused storage's error included."""
    root, env, first = repo
    study = postgres.create("optuna_secrets")
    try:
        storage = study.replace("postgres@", f"postgres:{SENTINEL}@")
        sweep = sh(
            [sys.executable, "-m", "pipeline.sweep", "scratch", "--n-trials", "2", "--storage", storage], root, env
        )
        unknown = storage.replace("postgresql+psycopg", "mysql")  # a driver that is not installed: exit 2, one line
        refused = subprocess.run(
            [sys.executable, "-m", "pipeline.sweep", "scratch", "--n-trials", "1", "--storage", unknown],
            cwd=root, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        stores = {name: postgres.dump(name) for name in (*team_server.databases, "optuna_secrets")}
    finally:
        postgres.drop("optuna_secrets")
    assert "this worker ran 2 trials" in sweep.stdout and refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: --storage 'mysql://postgres:***@127.0.0.1:"), refused.stderr
    trials = MlflowClient(team_server.uri("alice")).search_runs(
        [MlflowClient(team_server.uri("alice")).get_experiment_by_name(team_server.experiment).experiment_id],
        "tags.sweep_role = 'trial'",
    )
    assert len(trials) == 2  # the sweep's worker wrote to the server as alice
    printed = {"the commands' output": first.stderr + said_by(sweep) + said_by(refused)}
    files = {
        str(path): path.read_bytes()
        for folder in (root, team_server.artifacts)
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
    }
    assert len(files) > 100 and len(stores) == 3  # the workspace, the cache, every run's artifacts
    secret = SENTINEL.encode()
    leaks = [where for where, text in printed.items() if SENTINEL in text]
    leaks += [where for where, data in {**files, **stores}.items() if secret in data]
    assert leaks == []
    assert SENTINEL in env["MLFLOW_TRACKING_URI"] and SENTINEL in storage  # it was there to leak
