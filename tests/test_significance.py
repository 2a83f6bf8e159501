"""Honest headlines: a winner is named only beyond noise, every headline says how many seeds are behind it,
runs that stopped at their epoch cap or far earlier than their partner are marked, a stage's sanity warning
replaces the winner, and the memory check says what each device's measured peak is.

Runs are logged straight to a real MLflow store in a temp dir (with their test answers, as the run contract
logs them) and read back the way the compare stage reads them."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.compare import sources
from pipeline.compare.sources import ListedRun, fetch_predictions, fetch_runs
from pipeline.paradigms.active_learning.compare import compare_with_random
from pipeline.paradigms.multitask.compare import compare_with_separate_models
from pipeline.paradigms.transfer.compare import compare_on_target
from pipeline.reporting.sections import Results, memory_check
from pipeline.reporting.significance import Scores, compare
from pipeline.reporting.table import by_variant
from pipeline.tracking import contract
from pipeline.tracking.runs import experiment_id

N = 200  # test examples
TRUTH = np.arange(N) % 10


def answers(wrong: int, offset: int = 0) -> np.ndarray:
    """Predictions for TRUTH with ``wrong`` mistakes, on examples ``offset`` … ``offset + wrong - 1``."""
    pred = TRUTH.copy()
    pred[offset : offset + wrong] = (pred[offset : offset + wrong] + 1) % 10
    return pred


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (each test logs runs of its own), the tracking URI restored after."""
    uri, before = f"sqlite:///{tmp_path_factory.mktemp('significance') / 'mlflow.db'}", mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield MlflowClient(uri)
    mlflow.set_tracking_uri(before)


def log_run(
    stage: str,
    variant: str,
    predicted: dict[str, np.ndarray] | None,
    seed: int = 42,
    paradigm: str | None = None,
    epochs: int = 10,
    cap: int = 30,
    device: str = "cpu",
    sanity: str = "",
    metrics: dict[str, float] | None = None,
) -> ListedRun:
    """A finished run as a training stage leaves it: tags, seed and epoch cap, test accuracy, test answers."""
    tags = {"stage": stage, "paradigm": paradigm or stage, "variant": variant, "device": device}
    with mlflow.start_run(
        experiment_id=experiment_id("paradigm-lab"), tags=tags | ({"sanity": sanity} if sanity else {})
    ):
        mlflow.log_params({"seed": seed, "trainer.max_epochs": cap})
        found = {out: float(np.mean(pred == TRUTH)) for out, pred in (predicted or {}).items()}
        mlflow.log_metrics(
            {"test/acc": float(np.mean(list(found.values()))) if found else 0.5, "train/epochs": epochs}
            | {"params/trainable": 1000, "params/total": 2000, "time/fit_seconds": 1.0}
            | {"memory/estimated_train_bytes": 16_000, "memory/measured_state_bytes": 16_000}
            | {"memory/peak_bytes": 4_000_000}
            | {f"test/{out}/acc": acc for out, acc in found.items() if out != "label"}
            | (metrics or {})
        )
        if predicted is not None:
            contract.log_predictions({out: (TRUTH, pred) for out, pred in predicted.items()})
        run_id = mlflow.active_run().info.run_id
    return ListedRun(stage, variant if seed == 42 else f"{variant}@seed{seed}", run_id)


def results_of(client: MlflowClient, listed: list[ListedRun]) -> Results:
    runs = fetch_runs(listed, client, sources.LOCAL_UI, {})
    no_history = pd.DataFrame(columns=["variant", "seed", "step", "value"])
    return Results(
        by_variant(runs), runs, lambda chosen, key: no_history, lambda run_id: fetch_predictions(client, run_id)
    )


def target_section(client: MlflowClient, accuracies: dict[str, list[np.ndarray]], **kwargs):
    """The transfer-vs-scratch section over runs whose test answers are given, per variant one array per seed."""
    listed = [
        log_run(stage, stage, {"label": pred}, seed=42 + i, **kwargs)
        for stage, per_seed in accuracies.items()
        for i, pred in enumerate(per_seed)
    ]
    return compare_on_target(results_of(client, listed))


def test_two_runs_within_their_noise_tie_and_the_headline_says_so_with_its_seed(store):
    section = target_section(store, {"transfer": [answers(40)], "scratch": [answers(42)]})  # 0.80 vs 0.79
    assert "tie within noise: transfer 0.800, scratch 0.790 (1 seed, McNemar p ≥ 0.05)" in section.headline
    assert "best" not in section.headline
    assert "| tied (McNemar p = 0.5) |" in section.table


def test_a_real_gap_is_a_win_named_with_its_test_and_seed(store):
    section = target_section(store, {"transfer": [answers(10)], "scratch": [answers(60)]})  # 0.95 vs 0.70
    assert section.headline.startswith(
        "Transfer vs fine-tune vs scratch (target task): best transfer at 0.950 (1 seed; beats every other: "
        "McNemar p < 0.05); scratch 0.700"
    )
    assert "| worse (McNemar p = " in section.table


def test_three_seeds_with_a_consistent_gap_win_by_the_paired_t_test(store):
    section = target_section(
        store,
        {"transfer": [answers(36), answers(34), answers(38)], "scratch": [answers(44), answers(43), answers(45)]},
    )
    assert "best transfer at 0.820 ± 0.010 (3 seeds; beats every other: paired t-test p < 0.05)" in section.headline


def test_two_seeds_win_only_when_each_seed_does():
    strong, weak = answers(10), answers(60)
    both = compare(Scores({1: 0.95, 2: 0.95}, {1: (TRUTH, strong), 2: (TRUTH, strong)}),
                   Scores({1: 0.70, 2: 0.70}, {1: (TRUTH, weak), 2: (TRUTH, weak)}))  # fmt: skip
    assert both.a_wins and both.test == "McNemar" and "weaker seed" in both.detail()
    one = compare(Scores({1: 0.95, 2: 0.79}, {1: (TRUTH, strong), 2: (TRUTH, answers(42))}),
                  Scores({1: 0.70, 2: 0.80}, {1: (TRUTH, weak), 2: (TRUTH, answers(40))}))  # fmt: skip
    assert not one.significant and one.why == "seeds disagree"
    small = compare(Scores({1: 0.80, 2: 0.805}, {1: (TRUTH, answers(40)), 2: (TRUTH, answers(39))}),
                    Scores({1: 0.70, 2: 0.79}, {1: (TRUTH, weak), 2: (TRUTH, answers(42))}))  # fmt: skip
    assert not small.significant and small.p >= 0.05  # ahead on both seeds, but not beyond noise on the second


def test_a_run_without_test_answers_falls_back_to_the_unpaired_standard_error(store):
    old = log_run("scratch", "scratch", None, metrics={"test/acc": 0.70})  # from a store before answers were logged
    assert fetch_predictions(store, old.run_id) is None
    near = log_run("transfer", "transfer", {"label": answers(58)})  # 0.71: |Δ| 0.01 against 2·SE ≈ 0.09
    tied = compare_on_target(results_of(store, [near, old]))
    assert "tie within noise" in tied.headline and "|Δ| ≤ 2·SE" in tied.headline
    far = log_run("transfer", "transfer", {"label": answers(10)})  # 0.95
    assert (
        "best transfer at 0.950 (1 seed; beats every other: |Δ| > 2·SE"
        in compare_on_target(results_of(store, [far, old])).headline
    )


def test_a_sanity_warning_names_no_winner(store):
    warning = "best test acc 0.12 is within 5 points of chance (0.10)"
    listed = [
        log_run("transfer", "transfer", {"label": answers(10)}, sanity=warning),
        log_run("transfer", "transfer", {"label": answers(12)}, seed=43),
        log_run("scratch", "scratch", {"label": answers(60)}),
    ]
    results = results_of(store, listed)
    assert list(results.table["sanity"]) == [warning, ""]  # one seed's warning is its variant's
    section = compare_on_target(results)
    assert section.headline == f"Transfer vs fine-tune vs scratch (target task): no winner named: {warning}"
    assert f"**No winner named.** The sanity check of these runs' stage warns: {warning}" in section.text


def test_runs_at_their_epoch_cap_or_far_shorter_than_their_partner_are_marked(store):
    listed = [
        log_run("transfer", "transfer", {"label": answers(40)}, epochs=30, cap=30),
        log_run("scratch", "scratch", {"label": answers(42)}, epochs=19, cap=30),
    ]
    table = compare_on_target(results_of(store, listed)).table
    assert "| 30 of 30; hit cap: may be under-trained " in table
    assert "| 19 of 30; stopped early: under ⅔ of transfer's 30 " in table


def test_the_multitask_headline_says_within_noise_per_task_and_when_epochs_differ_far(store):
    listed = [
        log_run("multitask", "single_task/digit", {"digit": answers(40)}, paradigm="single_task", epochs=43, cap=50),
        log_run("multitask", "single_task/parity", {"parity": answers(60)}, paradigm="single_task", epochs=40, cap=50),
        log_run("multitask", "multitask", {"digit": answers(42), "parity": answers(10)}, epochs=22, cap=50),
    ]
    section = compare_with_separate_models(results_of(store, listed))
    assert section.headline.startswith(
        "Multi-task vs separate models (1 seed): accuracy Δ per task digit -0.010 (within noise, McNemar p = 0.5), "
        "parity +0.250 (multitask better, McNemar p = "
    )
    assert "not like for like: multitask trained 22 epochs, separate digit 43" in section.headline
    assert "stopped early: under ⅔ of multitask/single_task/digit's 43" in section.table


def test_the_memory_check_shows_the_ratio_on_either_device_and_says_what_each_peak_is(store):
    cpu = log_run("scratch", "scratch", {"label": answers(40)})
    alone = memory_check(results_of(store, [cpu]), 0.15, 0.15)
    assert "est. / peak" in alone.table and "peak of live tensor bytes over the first optimizer steps" in alone.text
    assert "CUDA allocator" not in alone.text
    gpu = log_run("transfer", "transfer", {"label": answers(40)}, device="cuda:0")
    both = memory_check(results_of(store, [cpu, gpu]), 0.15, 0.15)
    assert "CUDA allocator's peak" in both.text and "peak of live tensor bytes" in both.text
    ratio = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in both.table.splitlines()[2:]}
    assert ratio == {"scratch": "0.4%", "transfer": "0.4%"}  # 16,000 bytes of model state in a 4 MB peak, either device


def test_the_contract_logs_the_answers_where_compare_reads_them():
    assert contract.PREDICTIONS_ARTIFACT == sources.PREDICTIONS_ARTIFACT


def test_a_score_without_test_answers_is_ranked_only_on_one_seed_and_t_tested_on_two():
    verdict = compare(Scores({42: 0.61}), Scores({42: 0.60}))
    assert not verdict.significant and verdict.test == "none" and math.isnan(verdict.p)
    two = compare(Scores({42: 0.50, 43: 0.52}), Scores({42: 0.45, 43: 0.46}))  # agree, mean gap 8x their std
    assert two.test == "paired t-test" and not two.significant and 0.05 <= two.p < 0.1


def test_the_area_under_the_learning_curve_is_a_ranking_on_one_seed_and_a_t_test_over_three(store):
    def strategies(areas: dict[str, list[float]]):
        return [
            log_run("active_learning", name, None, seed=42 + i, metrics={"al/alc": area})
            for name, per_seed in areas.items()
            for i, area in enumerate(per_seed)
        ]

    one = compare_with_random(results_of(store, strategies({"margin": [0.62], "random": [0.60]})))
    assert one.headline == (
        "Active-learning strategies vs random: area under the curve: margin first at 0.620 (1 seed: ranking only, "
        "not significant)."
    )
    three = compare_with_random(
        results_of(store, strategies({"margin": [0.62, 0.63, 0.61], "random": [0.58, 0.60, 0.57]}))
    )
    assert "best margin at 0.620 ± 0.010 (3 seeds; beats every other: paired t-test p < 0.05)" in three.headline
