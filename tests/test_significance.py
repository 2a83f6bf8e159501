"""Honest headlines: a winner is named only beyond noise, every headline says how many seeds are behind it,
runs that stopped at their epoch cap or far earlier than their partner are marked, a stage's sanity warning
replaces the winner, and the memory check says what each device's measured peak is.

Runs are logged straight to a real MLflow store in a temp dir (with their test answers, as the run contract
logs them) and read back the way the compare stage reads them."""

from __future__ import annotations

import math
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import ttest_1samp

from pipeline.compare import sources
from pipeline.compare.sources import ListedRun, fetch_predictions, fetch_runs
from pipeline.paradigms.active_learning.compare import compare_with_random
from pipeline.paradigms.multitask.compare import compare_with_separate_models
from pipeline.paradigms.transfer.compare import compare_on_target
from pipeline.reporting.results import Results
from pipeline.reporting.sections import memory_check
from pipeline.reporting.significance import ALPHA, Scores, Standing, Verdict, _one_seed, compare, standing
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
    return ListedRun(stage, variant, run_id)


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


def test_the_contract_logs_the_answers_where_compare_reads_them(store):
    """What the run contract logs as a run's test answers, the compare side reads back, output by output.

    Catches: the contract saving the answers under another artifact path or name than compare reads."""
    logged = {"label": answers(7), "colour": answers(3, offset=50)}
    run = log_run("multitask", "joint", logged)  # the contract's log_predictions, inside a real run of the store
    found = fetch_predictions(store, run.run_id)
    assert found is not None and set(found) == set(logged)
    for output, predicted in logged.items():
        true, pred = found[output]
        assert np.array_equal(true, TRUTH) and np.array_equal(pred, predicted), output


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


# The rules themselves, on hand-built scores: no store, no runs. Scores are chosen exact in binary where a gap is
# compared whole; a p-value is computed here independently (the exact binomial sum, scipy's one-sample t-test).


def mcnemar_p(ahead: int, behind: int) -> float:
    """The exact two-sided McNemar p-value, summed here from the binomial coefficients."""
    n, k = ahead + behind, min(ahead, behind)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def test_a_variant_with_no_seed_has_no_mean_and_no_warning_and_otherwise_the_mean_of_its_seeds():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "mean of empty slice" would be one
        assert math.isnan(Scores({}).mean())
    assert Scores({1: 0.5, 2: 0.75, 3: 1.0}).mean() == 0.75


def test_a_p_value_exactly_at_alpha_is_not_below_it_and_the_rule_keeps_its_why():
    assert Verdict(0.25, False, "McNemar", 1, ALPHA).rule() == "McNemar p ≥ 0.05"
    assert Verdict(0.25, True, "McNemar", 2, 0.01, "on the weaker seed").rule() == (
        "McNemar p < 0.05, on the weaker seed"
    )
    assert Verdict(0.25, True, "McNemar", 2, 0.01, "on the weaker seed").detail() == (
        "McNemar p = 0.01, on the weaker seed"
    )
    untested = Verdict(0.25, False, "none", 1, why="ranking only, not tested")
    assert untested.rule() == untested.detail() == "ranking only, not tested"


def test_variants_with_no_seed_in_common_are_compared_by_mean_but_not_tested():
    verdict = compare(Scores({1: 0.75, 2: 0.875}), Scores({3: 0.5}))
    assert verdict == Verdict(0.8125 - 0.5, False, "none", 0, why="no seed in common: not tested")


def test_one_seed_without_test_answers_is_a_ranking_only():
    assert compare(Scores({42: 0.75}), Scores({42: 0.5})) == Verdict(
        0.25, False, "none", 1, why="ranking only, not tested"
    )


def test_two_seeds_that_do_not_both_put_one_variant_ahead_disagree():
    """A zero gap on one seed is no agreement either way, whatever the other seed says."""
    some = {1: (TRUTH, answers(40)), 2: (TRUTH, answers(40))}
    for a, b in [((0.75, 0.875), (0.75, 0.75)), ((0.75, 0.625), (0.75, 0.75)), ((0.875, 0.625), (0.75, 0.75))]:
        verdict = compare(Scores({1: a[0], 2: a[1]}, some), Scores({1: b[0], 2: b[1]}))
        gap = (a[0] - b[0] + a[1] - b[1]) / 2
        assert verdict == Verdict(gap, False, "seeds", 2, why="seeds disagree"), (a, b)


def test_two_seeds_behind_on_both_lose_by_mcnemar_on_the_weaker_seed():
    a = Scores({1: 0.70, 2: 0.75}, {1: (TRUTH, answers(60)), 2: (TRUTH, answers(50))})
    b = Scores({1: 0.95, 2: 0.80}, {1: (TRUTH, answers(10)), 2: (TRUTH, answers(40))})
    verdict = compare(a, b)  # behind on 50 examples (none ahead), then on 10: the weaker seed's p is the larger
    expected = mcnemar_p(0, 10)
    assert verdict == Verdict(pytest.approx(-0.15), True, "McNemar", 2, pytest.approx(expected), "on the weaker seed")
    assert verdict.b_wins and expected > mcnemar_p(0, 50)


def test_one_seed_mcnemar_counts_only_the_examples_the_two_runs_answer_differently():
    a = Scores({7: 0.95}, {7: (TRUTH, answers(10))})  # wrong on examples 0-9
    b = Scores({7: 0.85}, {7: (TRUTH, answers(30, offset=5))})  # wrong on 5-34: a ahead on 25, behind on 5
    assert compare(a, b) == Verdict(0.95 - 0.85, True, "McNemar", 1, pytest.approx(mcnemar_p(25, 5)))


def test_two_runs_answering_every_example_alike_tie_with_p_one():
    same = {7: (TRUTH, answers(40))}
    assert compare(Scores({7: 0.8}, same), Scores({7: 0.8}, same)) == Verdict(0.0, False, "McNemar", 1, 1.0)


def test_one_seeds_verdict_carries_its_own_gap_and_a_single_seed():
    assert _one_seed(0.95, 0.85, (TRUTH, answers(10)), (TRUTH, answers(30, 5)), N) == Verdict(
        pytest.approx(0.1), True, "McNemar", 1, pytest.approx(mcnemar_p(25, 5))
    )
    assert _one_seed(0.5, 0.375, (TRUTH, answers(10)), None, 64) == Verdict(
        0.125, False, "2·SE", 1, why="|Δ| ≤ 2·SE (0.174; no test predictions)"
    )  # SE = √((0.25 + 0.234375) / 64) = 0.087


def test_answers_on_different_test_examples_are_not_paired_and_fall_back_to_the_standard_error():
    shuffled = np.roll(TRUTH, 1)
    a = Scores({7: 0.75}, {7: (TRUTH, answers(50))})
    b = Scores({7: 0.5}, {7: (shuffled, shuffled)})  # as many examples, but other ones
    se2 = 2 * math.sqrt((0.75 * 0.25 + 0.5 * 0.5) / N)  # 0.094
    assert compare(a, b) == Verdict(0.25, True, "2·SE", 1, why=f"|Δ| > 2·SE ({se2:.3f}; no test predictions)")


def test_the_standard_error_is_that_of_two_proportions_on_the_examples_tested():
    """|Δ| 0.25 is beyond 2·SE 0.187 on 50 examples (but not beyond 3·SE 0.281)."""
    a = Scores({7: 0.75}, {7: (TRUTH[:50], TRUTH[:50])})
    assert compare(a, Scores({7: 0.5})) == Verdict(0.25, True, "2·SE", 1, why="|Δ| > 2·SE (0.187; no test predictions)")


def test_a_gap_of_exactly_two_standard_errors_is_not_beyond_them():
    """0.5 against 0.0 on 4 examples: SE = √(0.25 / 4) = 0.25 exactly, so |Δ| = 2·SE."""
    a = Scores({7: 0.5}, {7: (TRUTH[:4], answers(2)[:4])})
    assert compare(a, Scores({7: 0.0})) == Verdict(0.5, False, "2·SE", 1, why="|Δ| ≤ 2·SE (0.500; no test predictions)")


def test_with_no_standard_error_any_difference_is_beyond_it_and_none_is_not():
    perfect = Scores({7: 1.0}, {7: (TRUTH[:4], TRUTH[:4])})
    assert compare(perfect, Scores({7: 0.0})) == Verdict(
        1.0, True, "2·SE", 1, why="|Δ| > 2·SE (0.000; no test predictions)"
    )
    assert compare(perfect, Scores({7: 1.0})) == Verdict(
        0.0, False, "2·SE", 1, why="|Δ| ≤ 2·SE (0.000; no test predictions)"
    )


def test_two_seeds_by_standard_error_list_each_seeds_reason_and_have_no_p_value():
    a = Scores({1: 0.875, 2: 0.75}, {1: (TRUTH, TRUTH), 2: (TRUTH, TRUTH)})
    verdict = compare(a, Scores({1: 0.5, 2: 0.5}))
    se1 = 2 * math.sqrt((0.875 * 0.125 + 0.25) / N)  # 0.079
    se2 = 2 * math.sqrt((0.75 * 0.25 + 0.25) / N)  # 0.094
    why = f"|Δ| > 2·SE ({se1:.3f}; no test predictions); |Δ| > 2·SE ({se2:.3f}; no test predictions)"
    assert verdict == Verdict(0.3125, True, "2·SE", 2, why=why)


def test_a_seed_tested_by_mcnemar_and_one_by_standard_error_give_no_single_p_value():
    a = Scores({1: 0.95, 2: 0.95}, {1: (TRUTH, answers(10)), 2: (TRUTH, answers(10))})
    b = Scores({1: 0.70, 2: 0.70}, {1: (TRUTH, answers(60)), 2: None})  # seed 2 logged no answers
    se = 2 * math.sqrt((0.95 * 0.05 + 0.7 * 0.3) / N)
    assert compare(a, b) == Verdict(
        pytest.approx(0.25), True, "McNemar/2·SE", 2, why=f"|Δ| > 2·SE ({se:.3f}; no test predictions)"
    )


def test_three_seeds_are_t_tested_on_their_gaps():
    a, b = Scores({1: 0.875, 2: 0.75, 3: 0.8125}), Scores({1: 0.75, 2: 0.6875, 3: 0.75})
    p = float(ttest_1samp([0.125, 0.0625, 0.0625], 0.0).pvalue)
    assert compare(a, b) == Verdict(pytest.approx(0.25 / 3), p < ALPHA, "paired t-test", 3, pytest.approx(p))


def test_no_spread_over_seeds_is_no_gap_at_zero_and_a_win_for_a_constant_non_zero_gap():
    flat = Scores({1: 0.75, 2: 0.75, 3: 0.75})
    assert compare(flat, flat) == Verdict(0.0, False, "paired t-test", 3, 1.0)
    assert compare(flat, Scores({1: 0.625, 2: 0.625, 3: 0.625})) == Verdict(0.125, True, "paired t-test", 3, 0.0)
    assert compare(Scores({1: 0.5, 2: 0.5}), Scores({1: 0.625, 2: 0.625})) == Verdict(
        -0.125, True, "paired t-test", 2, 0.0
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_scores_equal_up_to_rounding_are_no_gap(seed):
    """0.1 + 0.2 is not 0.3 in floating point: a gap of 6e-17 on one seed, the first or another, is no win.

    Catches: only the first seed's gap compared with zero, and exactly (a rounding gap there won at p = 0)."""
    verdict = compare(Scores({1: 0.3, 2: 0.3, 3: 0.3} | {seed: 0.1 + 0.2}), Scores({1: 0.3, 2: 0.3, 3: 0.3}))
    assert (verdict.significant, verdict.test, verdict.seeds, verdict.p) == (False, "paired t-test", 3, 1.0)


def test_a_t_test_p_value_exactly_at_alpha_is_no_win():
    """Two gaps found (scipy 1.17) to give p = 0.05 to the last bit: a win needs p below ALPHA."""
    gaps = {1: 0.08823814699152238, 2: 0.07536249706654556}
    verdict = compare(Scores(gaps), Scores({1: 0.0, 2: 0.0}))
    assert verdict.p == ALPHA, "the gaps no longer give p = ALPHA exactly: search new ones near them"
    assert verdict == Verdict(pytest.approx(0.0818003220), False, "paired t-test", 2, ALPHA)
    assert verdict.rule() == "paired t-test p ≥ 0.05"


def test_the_t_tests_numeric_warnings_stay_inside_it():
    """A degenerate score (here infinite) gives no p-value, no win and no RuntimeWarning from numpy."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verdict = compare(Scores({1: math.inf, 2: 0.75, 3: 0.5}), Scores({1: 0.5, 2: 0.5, 3: 0.5}))
    assert not verdict.significant and verdict.test == "paired t-test" and math.isnan(verdict.p)


def test_a_variant_with_no_mean_is_never_the_best():
    found = standing({"none": Scores({}), "some": Scores({1: 0.5}), "less": Scores({1: 0.25})})
    assert found.best == "some" and set(found.against) == {"none", "less"}
    assert found.against["less"] == Verdict(0.25, False, "none", 1, why="ranking only, not tested")
    untested = found.against["none"]
    assert (untested.significant, untested.test, untested.seeds, untested.why) == (
        False,
        "none",
        0,
        "no seed in common: not tested",
    )
    assert found.means["some"] == 0.5 and found.means["less"] == 0.25 and math.isnan(found.means["none"])


def test_the_tied_are_the_best_then_the_others_not_beaten_by_mean_and_a_clear_best_stands_alone():
    tie, win = Verdict(0.01, False, "McNemar", 1, 0.5), Verdict(0.2, True, "McNemar", 1, 0.001)
    means = {"a": 0.9, "b": 0.8, "c": 0.85, "d": 0.7, "e": 0.6}
    found = Standing("a", {"b": tie, "c": tie, "d": win, "e": tie}, means)
    assert (found.tied, found.clear) == (["a", "c", "b", "e"], False)
    assert (Standing("a", {"d": win}, means).tied, Standing("a", {"d": win}, means).clear) == (["a"], True)
    assert Standing("a", {}, {"a": 0.9}).clear
