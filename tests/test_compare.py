"""The comparison stage over a tiny run of every paradigm stage (two seeds each), in a real MLflow store.

The paradigms compared include one registered from outside the package (tests/toy_paradigm.py): its
runs and its own section reach the report without the comparison knowing it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.compare.deployment import deployment_cost, pareto_front, with_fronts
from pipeline.compare.run import run_compare, write_champions
from pipeline.compare.sources import fetch_predictions
from pipeline.errors import UserError
from pipeline.paradigms import paradigms, registered
from pipeline.paradigms.repeats import over_seeds
from pipeline.reporting.charts import accuracy_chart, write_charts
from pipeline.reporting.results import Results
from pipeline.reporting.sections import memory_check
from pipeline.reporting.table import by_variant, number
from pipeline.tracking.outputs import write_stage_metrics
from tests import toy_paradigm
from tests.conftest import PROJECT_ROOT, make_params, pretrained_workspace, stage_paths

PARADIGM_STAGES = (*(p.stage for p in paradigms()), toy_paradigm.PARADIGM.stage)
SECTIONS = [
    "Headlines",
    "Every run",
    "Transfer vs fine-tune vs scratch (target task)",
    "Fine-tuning variants",
    "Multi-task vs separate models",
    "Federated (IID, non-IID, strategies) vs centralised",
    "Active-learning strategies vs random",
    "Narrow vs scratch",
    "Deployment cost: accuracy against size and latency",
    "Memory check: estimated vs measured",
]
JUDGED = SECTIONS[2:7]  # the paradigms' own sections: each names a winner or a difference


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    with registered(toy_paradigm.PARADIGM):
        params = make_params(repeats=2)
        with pretrained_workspace(root, params):
            for entry in paradigms():
                run_stage, paths = entry.run.load(), stage_paths(entry.stage, root)
                runs = over_seeds(lambda seeded, run_stage=run_stage, paths=paths: run_stage(seeded, paths), params)
                write_stage_metrics(entry.stage, runs, root / "metrics")
            result = run_compare(params, root / "metrics", root / "reports", root / "plots" / "compare")
            write_champions(result, root / "metrics")
            yield root, params, result


def listed(root) -> dict[str, dict[str, list[str]]]:
    """Per stage, per variant, the run ids its file ``metrics/<stage>/<variant>.json`` lists."""
    return {stage: variant_files(root / "metrics" / stage) for stage in PARADIGM_STAGES}


def variant_files(folder) -> dict[str, list[str]]:
    found = {path.relative_to(folder).with_suffix("").as_posix(): path for path in folder.rglob("*.json")}
    return {variant: json.loads(path.read_text())["run_ids"] for variant, path in found.items()}


def every_run_id(root) -> list[str]:
    return [run_id for runs in listed(root).values() for ids in runs.values() for run_id in ids]


def test_report_answers_every_question_with_every_run_and_mean_and_std(compared):
    root, _, result = compared
    report = (root / "reports" / "comparison.md").read_text()
    for title in SECTIONS:
        assert f"## {title}" in report, title
    for label in result.table["label"]:
        assert f"| {label} " in report, label
    assert " ± " in report  # two seeds per variant
    federated = report.split("## Federated")[1].split("\n## ")[0]
    assert re.search(r"\| run +\| engine +\|", federated) and re.search(r"\| iid/fedavg +\| inprocess +\|", federated)
    for run_id in every_run_id(root):
        assert run_id[:8] in report
    for figure in (
        "accuracy_vs_trainable_params",
        "memory_estimated_vs_measured",
        "federated_rounds",
        "active_learning_curves",
        "multitask_vs_separate",
        "deployment_pareto",
    ):
        assert (root / "reports" / "figures" / f"{figure}.png").stat().st_size > 1000
        assert f"(figures/{figure}.png)" in report


def test_csv_has_one_row_per_run_and_each_variants_file_the_mean_over_seeds(compared):
    root, _, result = compared
    runs = pd.read_csv(root / "reports" / "comparison.csv")
    assert sorted(runs["run_id"]) == sorted(every_run_id(root))
    assert (runs.groupby("label")["seed"].apply(set) == {42, 43}).all()
    scratch = json.loads((root / "metrics" / "scratch" / "scratch.json").read_text())
    pair = runs[runs.label == "scratch"]["test/acc"]
    assert scratch["acc"] == pytest.approx(pair.mean(), abs=5e-5) and scratch["acc_std"] == pytest.approx(
        pair.std(), abs=5e-5
    )
    row = result.table[result.table.label == "scratch"].iloc[0]
    assert row["seeds"] == 2 and row["test/acc"] == pytest.approx(pair.mean())


def test_compares_dvc_metrics_name_each_questions_champion_and_the_compare_run(compared):
    root, _, result = compared
    written = variant_files(root / "metrics" / "compare")
    assert result.champions and set(written) == {champion.question for champion in result.champions}
    for champion in result.champions:
        shown = json.loads((root / "metrics" / "compare" / f"{champion.question}.json").read_text())
        assert shown == {"winner": champion.label, "run_ids": [result.run_id]}
        assert champion.label in set(result.table["label"]) and champion.run_id in every_run_id(root)


def test_primary_seed_runs_keep_the_variant_names(compared):
    root, params, _ = compared
    client = MlflowClient()
    for stage, runs in listed(root).items():
        for variant, ids in runs.items():
            found = [client.get_run(run_id).data for run_id in ids]
            assert [int(run.params["seed"]) for run in found] == [params.seed, params.seed + 1], (stage, variant)
            assert {run.tags["variant"] for run in found} == {variant}, (stage, variant)


def test_estimated_model_state_matches_the_measured_tensors_for_every_run(compared):
    _, _, result = compared
    trained = result.table["memory/measured_state_bytes"].notna().sum()
    assert trained and result.numbers["memory/runs_checked"] == trained
    assert result.numbers["memory/runs_outside_tolerance"] == 0
    # fp32 on CPU: the count is exact up to Adam's step scalars
    assert result.numbers["memory/largest_state_gap"] < 0.01


def test_compare_run_holds_the_report_tables_and_figures(compared):
    _, _, result = compared
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "compare"
    assert "Memory check" in run.data.tags["mlflow.note.content"]
    assert run.data.metrics["memory/runs_outside_tolerance"] == 0
    files = {a.path for d in ("comparison", "comparison/figures") for a in client.list_artifacts(run.info.run_id, d)}
    assert {
        "comparison/comparison.md",
        "comparison/comparison.csv",
        "comparison/every_run.json",
        "comparison/figures/federated_rounds.png",
    } <= files
    table = json.loads(open(client.download_artifacts(run.info.run_id, "comparison/every_run.json")).read())
    links = " ".join(row[table["columns"].index("MLflow")] for row in table["data"])
    assert len(table["data"]) == len(result.table)
    for run_id in every_run_id(compared[0]):
        assert f"/#/experiments/{run.info.experiment_id}/runs/{run_id}" in links


def test_dvc_plot_csvs_hold_every_run_and_curve(compared):
    root, _, _ = compared
    plots = root / "plots" / "compare"
    assert len(pd.read_csv(plots / "runs.csv")) == len(every_run_id(root))
    rounds = pd.read_csv(plots / "federated_rounds.csv")
    fl = {
        f"{partition}/{strategy}"
        for partition in ("iid", "dirichlet")
        for strategy in ("fedavg", "fedprox", "scaffold")
    }
    assert set(rounds["variant"]) == fl | {"centralized (final)"}
    assert sorted(rounds[rounds.variant == "iid/fedavg"]["round"]) == [1, 2, 3, 4]
    curves = pd.read_csv(plots / "active_learning.csv")
    assert set(curves["variant"]) == {"random", "least_confidence", "margin", "entropy", "bald"}
    assert set(pd.read_csv(plots / "multitask.csv")["label"]) == {
        "label: multitask",
        "label: separate",
        "parity: multitask",
        "parity: separate",
    }


def test_every_variants_deployment_cost_and_its_place_on_its_tasks_fronts_are_plotted_and_logged(compared):
    root, _, result = compared
    costs = ["test/acc", "model/size_bytes", "model/nonzero_weights", "deploy/latency_ms_p50", "deploy/latency_ms_p95"]
    assert result.table[[*costs, "deploy/throughput_samples_per_s"]].notna().all().all()
    plotted = pd.read_csv(root / "plots" / "compare" / "deployment.csv")
    assert list(plotted.columns) == ["run", "task", "test/acc", "model/size_bytes", "deploy/latency_ms_p50",
                                     "on_size_front", "on_latency_front"]  # fmt: skip
    assert sorted(plotted["run"]) == sorted(result.table["label"])
    for task, same in plotted.groupby("task"):  # every task has a front of its own, counted in the compare run
        assert same["on_size_front"].any(), task
        assert result.numbers[f"deploy/{task}/front_size_runs"] == same["on_size_front"].sum()
        assert result.numbers[f"deploy/{task}/front_latency_runs"] == same["on_latency_front"].sum()


def run_row(label: str, task: str, acc: float, size: float, p50: float, seed: int = 42, **metrics) -> dict:
    """One run as the comparison reads it from MLflow (:func:`pipeline.compare.sources.fetch_runs`); a run that trained
    holds training state (``metrics`` replace any of it)."""
    stage, _, variant = label.partition("/")
    trained = {"params/trainable": 1000.0, "memory/estimated_train_bytes": 16_000.0}
    trained |= {"memory/measured_state_bytes": 16_000.0}
    return {
        "stage": stage, "paradigm": stage, "variant": variant or stage, "label": label, "seed": seed, "task": task,
        "device": "cpu", "sanity": "", "run_id": f"{label}-{seed}".ljust(32, "0"), "link": f"http://ui/{label}",
        "test/acc": acc, "model/size_bytes": size, "model/nonzero_weights": size / 4, "deploy/latency_ms_p50": p50,
        "deploy/latency_ms_p95": 1.5 * p50, "deploy/throughput_samples_per_s": 1000 / p50,
        **trained, **metrics,
    }  # fmt: skip


def results_of(rows: list[dict]) -> Results:
    runs = pd.DataFrame(rows)
    no_history = pd.DataFrame(columns=["variant", "seed", "step", "value"])
    return Results(by_variant(runs), runs, lambda chosen, key: no_history)


# Two tasks. target: int8 is as accurate as a at a third of the size, b the most accurate and fastest, c beaten on
# both; full: d small and fast, e accurate. Each task has its own fronts although full's d is below every target run.
TWO_TASKS = [
    run_row("scratch/a", "target", 0.845, 1000, 1.0),
    run_row("transfer/b", "target", 0.84, 4000, 0.5),
    run_row("transfer/b", "target", 0.86, 4000, 0.5, seed=43),
    run_row("scratch/c", "target", 0.79, 2000, 2.0),
    run_row("compress/int8", "target", 0.845, 300, 1.5, **{"params/trainable": 0.0,
            "memory/estimated_train_bytes": float("nan"), "memory/measured_state_bytes": float("nan")}),
    run_row("distill/d", "full", 0.60, 500, 0.1),
    run_row("distill/e", "full", 0.90, 8000, 3.0),
]  # fmt: skip


def table_cells(markdown: str) -> list[list[str]]:
    """A markdown table's body rows, each as its stripped cells."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.splitlines()[2:]]


def test_the_pareto_front_keeps_every_point_nothing_beats_ties_included():
    nan = float("nan")
    # cost, score: (1, .8) front; (2, .8) beaten by (1, .8); (2, .9) and its twin both front; (3, .85) beaten;
    # (0.5, .5) cheapest; a point without a cost is on no front and beats nothing
    costs = [1, 2, 2, 2, 3, 0.5, nan, 5]
    scores = [0.8, 0.8, 0.9, 0.9, 0.85, 0.5, 0.99, 0.95]
    assert pareto_front(costs, scores) == [True, False, True, True, False, True, False, True]
    assert pareto_front([], []) == []
    assert pareto_front([1.0], [0.1]) == [True]


def test_the_deployment_section_marks_each_tasks_own_fronts_and_renders(tmp_path):
    section = deployment_cost(results_of(TWO_TASKS))
    fronts = with_fronts(results_of(TWO_TASKS).table).set_index("label")
    size_front = set(fronts.index[fronts["on_size_front"].astype(bool)])
    latency_front = set(fronts.index[fronts["on_latency_front"].astype(bool)])
    assert size_front == {"compress/int8", "transfer/b", "distill/d", "distill/e"}
    assert latency_front == {"transfer/b", "distill/d", "distill/e"}
    assert fronts.loc["transfer/b", "test/acc"] == pytest.approx(0.85) and fronts.loc["distill/d", "task"] == "full"
    assert section.metrics["deploy/target/front_size_runs"] == 2 and section.metrics["deploy/full/front_size_runs"] == 2
    assert section.metrics["deploy/target/front_latency_runs"] == 1
    assert section.metrics["deploy/target/smallest_near_best_size_bytes"] == 300  # int8: 0.845, 0.5 points off 0.85
    assert section.metrics["deploy/full/smallest_near_best_size_bytes"] == 8000
    assert "target: compress/int8 at 300 B, acc 0.845 (best 0.850)" in section.headline
    assert "full: distill/e at 7.8 KiB" in section.headline
    assert "per task" in section.text and "noisy" in section.text and "a few percent means nothing" in section.text
    shown = {cells[0]: cells[1:-1] for cells in table_cells(section.table)}  # the MLflow link last
    assert shown["compress/int8"] == ["target", "1", "0.845", "300 B", "75", "1.50", "2.25", "667", "yes", "no"]
    assert shown["transfer/b"] == ["target", "2", "0.850 ± 0.014", "3.9 KiB", "1,000", "0.500", "0.750", "2,000",
                                   "yes", "yes"]  # fmt: skip
    assert list(shown) == ["compress/int8", "scratch/a", "scratch/c", "transfer/b", "distill/d", "distill/e"]
    images = write_charts(section.charts, tmp_path / "plots", tmp_path / "figures")
    assert [image.name for image in images] == ["deployment_pareto.png"]
    plotted = pd.read_csv(tmp_path / "plots" / "deployment.csv")
    assert len(plotted) == 6 and set(plotted[plotted.on_size_front].run) == size_front


def test_latencies_show_three_significant_digits():
    assert [number(v, "ms") for v in (0.04123, 0.5, 1.5, 12.34, 123.4, 1234.5)] == [
        "0.0412", "0.500", "1.50", "12.3", "123", "1,234",
    ]  # fmt: skip


def test_the_memory_check_leaves_out_models_compressed_after_training():
    section = memory_check(results_of(TWO_TASKS), tolerance=0.15, activation_tolerance=0.15)
    assert section.metrics["memory/runs_checked"] == 5 and section.metrics["memory/runs_outside_tolerance"] == 0
    assert "| compress/int8 " not in section.table and "left out: compress/int8" in section.text
    assert section.headline == (
        "Memory check: estimated vs measured: 5 of 5 runs within 15% (largest gap 0.00%); activations: 0 of 0 runs "
        "within 15%."
    )


def test_the_memory_check_flags_activations_measured_far_from_their_prediction():
    predicted = {"memory/activation_bytes_estimated": 1000.0}
    rows = [
        run_row("scratch/a", "target", 0.8, 1000, 1.0, **predicted, **{"memory/activation_bytes_measured": 1040.0}),
        run_row("scratch/b", "target", 0.8, 1000, 1.0, **predicted, **{"memory/activation_bytes_measured": 2000.0}),
        run_row("compress/int8", "target", 0.8, 300, 1.0),  # nothing trained: no step to measure
    ]
    section = memory_check(results_of(rows), tolerance=0.15, activation_tolerance=0.15)
    assert section.metrics["memory/activation_runs_checked"] == 2
    assert section.metrics["memory/activation_runs_outside_tolerance"] == 1
    assert section.metrics["memory/largest_activation_gap"] == pytest.approx(0.5)
    shown = {cells[0]: cells for cells in table_cells(section.extra.split("\n\n", 1)[1])}
    assert shown["scratch/a"][-1] == "yes" and shown["scratch/b"][-1] == "**no**" and "compress/int8" not in shown
    assert "activations: 1 of 2 runs within 15%" in section.headline and "4 bytes a weight" in section.text


def test_the_accuracy_figure_leaves_out_runs_that_train_nothing_but_the_csv_keeps_them():
    chart = accuracy_chart(results_of(TWO_TASKS).runs)
    assert len(chart.rows) == 7 and (chart.rows["params/trainable"] == 0).sum() == 1
    drawn = sum(len(points.get_offsets()) for points in chart.figure.axes[0].collections)
    assert drawn == 6


def headlines(report: str) -> dict[str, str]:
    """The report's headlines by the section title they start with."""
    lines = report.split("## Headlines", 1)[1].split("## ", 1)[0].strip().splitlines()
    return {title: line[2:] for line in lines for title in SECTIONS if line[2:].startswith(title)}


def test_every_run_logs_its_test_answers_for_the_paired_tests(compared):
    root, _, _ = compared
    client = MlflowClient()
    for stage, runs in listed(root).items():
        answers = fetch_predictions(client, next(iter(runs.values()))[0])
        outputs = {"label", "parity"} if stage == "multitask" else {"label"}
        assert answers is not None and outputs <= set(answers), stage
        for y_true, y_pred in answers.values():
            assert y_true.shape == y_pred.shape and len(y_true) > 0
    shared = fetch_predictions(client, listed(root)["multitask"]["multitask"][0])
    assert set(shared) == {"label", "parity"}  # the default tasks: the class under data.label_column's name


def test_every_headline_that_names_a_winner_or_a_difference_says_how_many_seeds_and_how_it_was_decided(compared):
    root, _, _ = compared
    report = (root / "reports" / "comparison.md").read_text()
    found = headlines(report)
    for title in JUDGED:
        assert "2 seeds" in found[title], found[title]
    for title in (
        "Transfer vs fine-tune vs scratch (target task)",
        "Federated (IID, non-IID, strategies) vs centralised",
    ):
        assert "best " in found[title] or "tie within noise: " in found[title], found[title]
        assert "McNemar" in found[title] or "seeds disagree" in found[title], found[title]
    assert (
        "within noise" in found["Multi-task vs separate models"] or "better" in found["Multi-task vs separate models"]
    )
    assert "| vs best " in report and "hit cap: may be under-trained" in report  # no early stopping in TINY
    assert "peak of live tensor bytes over the first optimizer steps" in report and "| est. / peak " in report


def test_every_cpu_runs_measured_peak_holds_its_measured_model_state(compared):
    """The measured peak means something on the CPU: the weights, gradients and optimizer state it counts are alive
    together after a step, so no training run's peak is below its model state (the resident-memory rise it replaced
    read 4 KiB against 418 KiB of state for one LoRA variant)."""
    root, _, _ = compared
    runs = pd.read_csv(root / "reports" / "comparison.csv")  # every metric of every run, as MLflow holds it
    trained = runs[(runs["params/trainable"] > 0) & runs["memory/measured_state_bytes"].notna()]
    assert len(trained) >= 20
    below = trained[trained["memory/peak_bytes"] < trained["memory/measured_state_bytes"]]
    assert below.empty, below[["label", "seed", "memory/peak_bytes", "memory/measured_state_bytes"]]


def test_a_sanity_warning_on_a_stage_replaces_every_winner_it_would_name(compared, tmp_path):
    root, params, _ = compared
    client = MlflowClient()
    warning = "best test acc 0.11 is within 5 points of chance (0.10)"
    flagged = [next(iter(listed(root)[stage].values()))[0] for stage in PARADIGM_STAGES]
    for run_id in flagged:
        client.set_tag(run_id, "sanity", warning)
    try:
        unjudged = run_compare(params, root / "metrics", tmp_path / "reports", tmp_path / "plots")
    finally:
        for run_id in flagged:
            client.delete_tag(run_id, "sanity")
    report = (tmp_path / "reports" / "comparison.md").read_text()
    found = headlines(report)
    for title in JUDGED:
        assert found[title] == f"{title}: no winner named: {warning}", found[title]
    # the seven built-in sections that name a winner (target, fine-tuning, multi-task, federated, active learning,
    # distillation, compression) and the registered narrow paradigm's (it reads scratch's runs); the deployment
    # section names none
    assert report.count(f"**No winner named.** The sanity check of these runs' stage warns: {warning}") == 8
    assert f"- Narrow vs scratch: no winner named: {warning}" in report
    write_champions(unjudged, tmp_path / "metrics")
    assert variant_files(tmp_path / "metrics" / "compare") == {"no_champion": [unjudged.run_id]}


def copied_metrics(root, tmp_path):
    shutil.copytree(root / "metrics", tmp_path / "metrics")
    return tmp_path / "metrics"


def replace_run_id(metrics, stage: str, run_id: str) -> None:
    path = sorted((metrics / stage).rglob("*.json"))[0]
    doc = json.loads(path.read_text())
    doc["run_ids"][0] = run_id
    path.write_text(json.dumps(doc))


def test_a_plug_in_paradigm_has_its_runs_and_its_own_section_in_the_report(compared):
    root, _, result = compared
    report = (root / "reports" / "comparison.md").read_text()
    assert "| narrow " in report and "- Narrow vs scratch (2 seeds): Δ acc" in report
    assert result.table.set_index("label").loc["narrow", "seeds"] == 2 and "narrow/acc_vs_scratch" in result.numbers
    row = pd.read_csv(root / "reports" / "comparison.csv").query("stage == 'narrow'")
    assert set(row["task"]) == {"target"} and len(row) == 2


def test_a_missing_stage_is_named(compared, tmp_path):
    root, params, _ = compared
    metrics = copied_metrics(root, tmp_path)
    shutil.rmtree(metrics / "federated")
    with pytest.raises(UserError, match="stage 'federated' has no .*metrics/federated; run `dvc repro federated`"):
        run_compare(params, metrics, tmp_path / "reports", tmp_path / "plots")
    assert not (tmp_path / "reports").exists()


def test_a_run_id_not_in_the_store_is_named_with_its_stage(compared, tmp_path):
    root, params, _ = compared
    metrics = copied_metrics(root, tmp_path)
    replace_run_id(metrics, "transfer", "0" * 32)
    with pytest.raises(UserError, match=f"stage 'transfer' .* names MLflow run {'0' * 32}, which is not in the store"):
        run_compare(params, metrics, tmp_path / "reports", tmp_path / "plots")


@pytest.mark.parametrize("status", ["FAILED", "RUNNING", "KILLED"])
def test_a_run_that_did_not_finish_is_never_reported(compared, tmp_path, status):
    root, params, _ = compared
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(params.tracking.experiment).experiment_id
    partial = client.create_run(experiment, tags={"stage": "scratch", "paradigm": "scratch", "variant": "scratch"})
    client.log_metric(partial.info.run_id, "test/acc", 0.99)
    if status != "RUNNING":
        client.set_terminated(partial.info.run_id, status)
    metrics = copied_metrics(root, tmp_path)
    replace_run_id(metrics, "scratch", partial.info.run_id)
    with pytest.raises(
        UserError, match=f"stage 'scratch' .*{partial.info.run_id}, which is {status} in MLflow, not FINISHED"
    ):
        run_compare(params, metrics, tmp_path / "reports", tmp_path / "plots")
    assert not (tmp_path / "reports").exists()


def test_a_deleted_run_is_not_in_the_store(compared, tmp_path):
    root, params, _ = compared
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(params.tracking.experiment).experiment_id
    gone = client.create_run(experiment, tags={"stage": "transfer"})
    client.log_metric(gone.info.run_id, "test/acc", 0.5)
    client.set_terminated(gone.info.run_id, "FINISHED")
    client.delete_run(gone.info.run_id)
    metrics = copied_metrics(root, tmp_path)
    replace_run_id(metrics, "transfer", gone.info.run_id)
    with pytest.raises(UserError, match=f"{gone.info.run_id}, which is not in the store"):
        run_compare(params, metrics, tmp_path / "reports", tmp_path / "plots")


def test_a_run_of_another_stage_is_refused(compared, tmp_path):
    root, params, _ = compared
    metrics = copied_metrics(root, tmp_path)
    replace_run_id(metrics, "transfer", next(iter(listed(root)["scratch"].values()))[0])
    with pytest.raises(UserError, match="stage 'transfer' .* which stage 'scratch' made"):
        run_compare(params, metrics, tmp_path / "reports", tmp_path / "plots")


def test_the_stage_without_upstream_outputs_exits_2_with_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    env = {"PYTHONPATH": str(PROJECT_ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "stages.compare"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: compare: stage 'pretrain' has no metrics/pretrain; run `dvc repro pretrain` first"], (
        result.stderr
    )
    assert not (tmp_path / "reports").exists() and not (tmp_path / "metrics").exists()
