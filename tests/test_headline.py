"""Who leads a question and how the report words it: the seeds behind a headline, the ranking, the standing phrase,
the champion and its tie break, and a verdict in a table cell or a sentence.

Plain unit tests on hand-built runs and standings: no MLflow, no training."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipeline.reporting.headline import (
    TIE_BREAK,
    Champion,
    _or_inf,
    against_best,
    champion,
    chosen,
    headline_seeds,
    rank,
    standing_phrase,
    verdict_cell,
    verdict_words,
)
from pipeline.reporting.results import Results
from pipeline.reporting.significance import Scores, Standing, Verdict, standing
from pipeline.reporting.table import number

WIN = Verdict(0.25, True, "McNemar", 1, 0.001)  # the best beats the other beyond noise
TIE = Verdict(0.01, False, "McNemar", 1, 0.5)
TIE_T = Verdict(0.02, False, "paired t-test", 3, 0.3)
UNTESTED = Verdict(0.02, False, "none", 1, why="ranking only, not tested")
BY_SE = Verdict(0.2, True, "2·SE", 1, why="|Δ| > 2·SE (0.132; no test predictions)")
CHOSEN_BY = "the highest mean test/acc, as the headline ranks"


def results_of(accs: dict[str, list[float]], **costs: tuple[float, float]) -> tuple[Results, pd.DataFrame]:
    """Runs of each variant, one per seed (run ids ``<variant><seed>``), and their table rows; ``costs`` gives a
    variant's trainable parameters and saved model size (the columns are absent when no variant has them)."""
    runs = pd.DataFrame(
        [
            {"run_id": f"{v}{seed}", "seed": seed, "test/acc": acc, "al/alc": 1 - acc, "label": v}
            for v, values in accs.items()
            for seed, acc in enumerate(values)
        ]
    )
    rows = pd.DataFrame(
        [
            {
                "label": v,
                "variant": v,
                "run_ids": [f"{v}{seed}" for seed in range(len(values))],
                "seeds": len(values),
                "test/acc": sum(values) / len(values),
            }
            | ({"params/trainable": costs[v][0], "model/size_bytes": costs[v][1]} if costs else {})
            for v, values in accs.items()
        ]
    )
    return Results(rows, runs, history=lambda runs, metric: pd.DataFrame()), rows


def phrase_rows(accs: dict[str, float], seeds: int = 1) -> pd.DataFrame:
    return pd.DataFrame([{"label": v, "variant": f"v-{v}", "seeds": seeds, "test/acc": acc} for v, acc in accs.items()])


def phrase(found: Standing, rows: pd.DataFrame) -> str:
    return standing_phrase(found, rows, lambda row: number(row["test/acc"]), lambda row: row["variant"])


@pytest.mark.parametrize(
    ("seeds", "words"),
    [
        ([1], "1 seed"),
        ([1, 1], "1 seed"),
        ([2.0], "2 seeds"),
        ([3, 3, 3], "3 seeds"),
        ([3, 1, 2, 2], "1–3 seeds"),
        ([1, 2], "1–2 seeds"),
        ([], "no seeds"),
    ],
)
def test_a_headline_says_how_many_seeds_are_behind_it_and_the_range_when_rows_differ(seeds, words):
    assert headline_seeds(pd.DataFrame({"seeds": pd.Series(seeds, dtype=float if seeds else int)})) == words


def test_rank_compares_every_row_with_the_best_mean_on_its_seeds():
    results, rows = results_of({"a": [0.5, 0.625, 0.75], "b": [0.875, 0.75, 0.875], "c": [0.875, 0.875, 0.875]})
    expected = standing(
        {
            "a": Scores({0: 0.5, 1: 0.625, 2: 0.75}),
            "b": Scores({0: 0.875, 1: 0.75, 2: 0.875}),
            "c": Scores({0: 0.875, 1: 0.875, 2: 0.875}),
        }
    )
    found = rank(results, rows)
    assert found == expected and found.best == "c"
    assert found.means == {"a": 0.625, "b": pytest.approx(5 / 6), "c": 0.875}


def test_rank_reads_the_metric_it_is_given():
    results, rows = results_of({"a": [0.5, 0.625, 0.75], "b": [0.875, 0.75, 0.875]})
    found = rank(results, rows, "al/alc")  # 1 - acc: a leads
    assert found == standing({"a": Scores({0: 0.5, 1: 0.375, 2: 0.25}), "b": Scores({0: 0.125, 1: 0.25, 2: 0.125})})
    assert found.best == "a"


def test_a_lone_variant_is_only_named():
    assert phrase(Standing("a", {}, {"a": 0.8}), phrase_rows({"a": 0.8})) == "only v-a at 0.800 (1 seed)"


def test_variants_never_tested_are_a_ranking_only():
    found = Standing("a", {"b": UNTESTED, "c": UNTESTED}, {"a": 0.8, "b": 0.78, "c": 0.7})
    assert phrase(found, phrase_rows({"a": 0.8, "b": 0.78, "c": 0.7})) == (
        "v-a first at 0.800 (1 seed: ranking only, not significant)"
    )


def test_a_best_that_beats_every_other_is_named_with_each_distinct_rule_once():
    rows = phrase_rows({"a": 0.8, "b": 0.6, "c": 0.55, "d": 0.5}, seeds=3)
    found = Standing("a", {"b": WIN, "c": BY_SE, "d": WIN}, {"a": 0.8, "b": 0.6, "c": 0.55, "d": 0.5})
    assert phrase(found, rows) == (
        "best v-a at 0.800 (3 seeds; beats every other: McNemar p < 0.05; |Δ| > 2·SE (0.132; no test predictions))"
    )


def test_a_tie_lists_the_tied_by_mean_with_their_rules_and_counts_the_worse():
    rows = phrase_rows({"a": 0.8, "b": 0.78, "c": 0.79, "d": 0.6, "e": 0.5})
    means = {"a": 0.8, "b": 0.78, "c": 0.79, "d": 0.6, "e": 0.5}
    found = Standing("a", {"b": TIE, "c": Verdict(0.01, False, "McNemar", 1, 0.4), "d": WIN, "e": WIN}, means)
    assert phrase(found, rows) == (
        "tie within noise: v-a 0.800, v-c 0.790, v-b 0.780 (1 seed, McNemar p ≥ 0.05); 2 others worse beyond noise"
    )
    one_worse = Standing("a", {"b": TIE, "d": WIN}, means)
    assert phrase(one_worse, phrase_rows({"a": 0.8, "b": 0.78, "d": 0.6})) == (
        "tie within noise: v-a 0.800, v-b 0.780 (1 seed, McNemar p ≥ 0.05); 1 other worse beyond noise"
    )
    none_worse = Standing("a", {"b": TIE, "c": TIE_T}, means)
    assert phrase(none_worse, phrase_rows({"a": 0.8, "b": 0.78, "c": 0.79})) == (
        "tie within noise: v-a 0.800, v-c 0.790, v-b 0.780 (1 seed, paired t-test p ≥ 0.05; McNemar p ≥ 0.05)"
    )


def test_an_untested_variant_beside_a_beaten_one_is_a_tie_not_a_ranking_only():
    means = {"a": 0.8, "b": 0.78, "c": 0.6}
    found = Standing("a", {"b": UNTESTED, "c": WIN}, means)
    assert phrase(found, phrase_rows(means)) == (
        "tie within noise: v-a 0.800, v-b 0.780 (1 seed, ranking only, not tested); 1 other worse beyond noise"
    )


def test_the_tie_break_rule_reads_cheapest_to_train_then_to_store_then_the_higher_mean():
    assert TIE_BREAK == "the fewest trainable parameters, then the smallest saved model, then the higher mean"


def test_a_lone_variants_champion_is_its_most_accurate_seed():
    results, rows = results_of({"a": [0.75, 0.875, 0.5]})
    picked = champion(results, rows, Standing("a", {}, {"a": 0.7}), "q", "asks", "phrase")
    assert picked == Champion(
        "q", "asks", "a1", "a", "test/acc", 0.875, "phrase", CHOSEN_BY, "no tie: the only variant"
    )
    assert picked.line() == f"champion `a`: {CHOSEN_BY}; no tie: the only variant"


def test_a_clear_best_is_the_champion_whatever_it_costs():
    results, rows = results_of({"a": [0.875, 0.75], "b": [0.5, 0.99]}, a=(9000, 9e6), b=(10, 10))
    found = Standing("a", {"b": WIN}, {"a": 0.8125, "b": 0.745})
    assert champion(results, rows, found, "q", "asks", "phrase") == Champion(
        "q", "asks", "a0", "a", "test/acc", 0.875, "phrase", CHOSEN_BY, "no tie: it beats every other beyond noise"
    )


def test_a_champion_is_picked_on_the_metric_the_headline_ranks_by():
    results, rows = results_of({"a": [0.875, 0.75, 0.5]})  # al/alc = 1 - acc: seed 2 is best on it
    picked = champion(results, rows, Standing("a", {}, {"a": 0.3}), "q", "asks", "phrase", metric="al/alc")
    assert picked == Champion(
        "q", "asks", "a2", "a", "al/alc", 0.5, "phrase", "the highest mean al/alc, as the headline ranks",
        "no tie: the only variant",
    )  # fmt: skip


def test_a_tie_within_noise_goes_to_the_fewest_trainable_parameters():
    """lora trains fewer parameters than full though it saves a bigger model and scores a little lower."""
    results, rows = results_of(
        {"full": [0.92, 0.93, 0.91], "lora": [0.90, 0.925, 0.92], "head": [0.70, 0.99, 0.70]},
        full=(26634, 100_000), lora=(1290, 120_000), head=(650, 50_000),
    )  # fmt: skip
    found = Standing("full", {"lora": TIE_T, "head": WIN}, {"full": 0.92, "lora": 0.915, "head": 0.7967})
    tie_break = (
        "tied within noise with full, broken by the fewest trainable parameters, then the smallest saved model, "
        "then the higher mean: 1,290 trainable, 117.2 KiB saved, mean 0.9150"
    )
    picked = champion(results, rows, found, "q", "asks", "phrase")
    assert picked == Champion("q", "asks", "lora1", "lora", "test/acc", 0.925, "phrase", CHOSEN_BY, tie_break)
    assert picked.line() == f"champion `lora`: {CHOSEN_BY}; {tie_break}"


def test_a_tie_on_trainable_parameters_goes_to_the_smaller_saved_model_and_names_every_other_tied():
    results, rows = results_of(
        {"full": [0.92], "bits": [0.91], "lora": [0.90]}, full=(1290, 100_000), bits=(1290, 2048), lora=(1290, 1024)
    )
    found = Standing("full", {"bits": TIE, "lora": TIE}, {"full": 0.92, "bits": 0.91, "lora": 0.9})
    assert champion(results, rows, found, "q", "asks", "phrase").tie_break == (
        f"tied within noise with full, bits, broken by {TIE_BREAK}: 1,290 trainable, 1.0 KiB saved, mean 0.9000"
    )


def test_a_tie_on_both_costs_goes_to_the_higher_mean():
    results, rows = results_of({"lora": [0.90], "full": [0.92]}, full=(1290, 2048), lora=(1290, 2048))
    found = Standing("full", {"lora": TIE}, {"full": 0.92, "lora": 0.9})
    picked = champion(results, rows, found, "q", "asks", "phrase")
    assert (picked.label, picked.run_id, picked.value) == ("full", "full0", 0.92)
    assert picked.tie_break == (
        f"tied within noise with lora, broken by {TIE_BREAK}: 1,290 trainable, 2.0 KiB saved, mean 0.9200"
    )


def test_an_unknown_cost_counts_as_the_highest():
    """A run that logged no parameter count is not the cheapest by default: NaN would compare as neither."""
    results, rows = results_of({"full": [0.92], "lora": [0.90]}, full=(math.nan, 100), lora=(1290, math.nan))
    found = Standing("full", {"lora": TIE}, {"full": 0.92, "lora": 0.9})
    assert champion(results, rows, found, "q", "asks", "phrase").tie_break == (
        f"tied within noise with full, broken by {TIE_BREAK}: 1,290 trainable, – saved, mean 0.9000"
    )
    results, rows = results_of({"full": [0.92], "lora": [0.90]})  # no cost columns at all: the higher mean
    assert champion(results, rows, found, "q", "asks", "phrase").tie_break == (
        f"tied within noise with lora, broken by {TIE_BREAK}: – trainable, – saved, mean 0.9200"
    )


def test_variants_never_tested_are_not_told_apart_rather_than_tied_within_noise():
    results, rows = results_of({"full": [0.92], "lora": [0.90], "head": [0.8]}, full=(9, 9), lora=(1, 1), head=(5, 5))
    means = {"full": 0.92, "lora": 0.9, "head": 0.8}
    untested = champion(results, rows, Standing("full", {"lora": UNTESTED, "head": UNTESTED}, means), "q", "a", "p")
    assert untested.tie_break == (
        f"not told apart (no noise estimate) with full, head, broken by {TIE_BREAK}: 1 trainable, 1 B saved, "
        "mean 0.9000"
    )
    mixed = champion(results, rows, Standing("full", {"lora": UNTESTED, "head": TIE}, means), "q", "a", "p")
    assert mixed.tie_break.startswith("tied within noise with full, head, broken by")


def test_a_variant_named_by_a_rule_of_its_own_registers_its_most_accurate_seed():
    results, rows = results_of({"full": [0.99, 0.99], "lora": [0.5, 0.625]})
    assert chosen(results, rows, "lora", "q", "asks", "phrase", "the smallest model within a point") == Champion(
        "q", "asks", "lora1", "lora", "test/acc", 0.625, "phrase", "the smallest model within a point",
        "no tie: the rule names one",
    )  # fmt: skip


def test_an_unknown_cost_is_infinite_and_a_known_one_a_float():
    assert _or_inf(None) == math.inf
    assert _or_inf(math.nan) == math.inf
    assert _or_inf(1290) == 1290.0 and isinstance(_or_inf(1290), float)
    assert _or_inf(0) == 0.0


def test_the_against_best_column_says_best_worse_or_tied_with_the_test():
    show = against_best(Standing("a", {"b": WIN, "c": TIE, "d": UNTESTED}, {}))
    cells = [show(pd.Series({"label": label})) for label in ("a", "b", "c", "d", "z")]
    assert cells == [
        "best",
        "worse (McNemar p = 0.001)",
        "tied (McNemar p = 0.5)",
        "tied (ranking only, not tested)",
        "–",
    ]


def test_a_verdict_in_words_is_above_below_or_tied_with_the_other():
    assert verdict_words(WIN, "scratch") == "above scratch (McNemar p = 0.001)"
    assert verdict_words(Verdict(-0.25, True, "McNemar", 1, 0.001), "scratch") == "below scratch (McNemar p = 0.001)"
    assert verdict_words(TIE, "scratch") == "tied with scratch within noise (McNemar p = 0.5)"
    assert verdict_words(Verdict(0.0, True, "paired t-test", 3, 0.0), "scratch") == (
        "tied with scratch within noise (paired t-test p = 0)"
    )  # significant but no gap: neither side wins


def test_a_verdict_in_a_cell_is_above_below_tied_or_a_dash():
    assert verdict_cell(None) == "–"
    assert verdict_cell(WIN) == "above (McNemar p = 0.001)"
    assert verdict_cell(Verdict(-0.25, True, "McNemar", 1, 0.001)) == "below (McNemar p = 0.001)"
    assert verdict_cell(UNTESTED) == "tied (ranking only, not tested)"
    assert verdict_cell(Verdict(0.0, True, "paired t-test", 3, 0.0)) == "tied (paired t-test p = 0)"


def test_a_champion_is_the_headlines_best_and_a_tie_within_noise_goes_to_the_fewest_trainable_parameters():
    """Ranked by the significance tests themselves: ``full`` and ``lora`` tied within noise over 3 seeds (``full`` a
    little ahead), ``head`` worse beyond it; ``lora`` trains fewer parameters than ``full``."""
    results, rows = results_of(
        {"full": [0.91, 0.93, 0.92], "lora": [0.92, 0.90, 0.915], "head": [0.70, 0.71, 0.69]},
        full=(26634, 120_000), lora=(1290, 120_000), head=(650, 120_000),
    )  # fmt: skip
    found = rank(results, rows)
    assert found.best == "full" and found.tied == ["full", "lora"]
    picked = champion(results, rows, found, "q", "asks", "phrase")
    assert picked.label == "lora"  # tied with the best, and 1,290 trainable against 26,634
    assert picked.run_id == "lora0"  # of its seeds, the most accurate
    assert picked.chosen_by == "the highest mean test/acc, as the headline ranks"
    assert picked.tie_break.startswith(f"tied within noise with full, broken by {TIE_BREAK}: 1,290 trainable")
    assert "champion `lora`" in picked.line() and "tie" in picked.line()

    clear = rows[rows.variant != "lora"]
    alone = champion(results, clear, rank(results, clear), "q", "asks", "phrase")
    assert (alone.label, alone.tie_break) == ("full", "no tie: it beats every other beyond noise")
