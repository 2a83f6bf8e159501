"""The report's section on active learning: every query strategy against labelling at random, with the
learning curves (test accuracy against labels used) as its chart."""

from __future__ import annotations

from pipeline.paradigms.active_learning.config import CONTROL
from pipeline.reporting.charts import curves_chart, mean_curves
from pipeline.reporting.headline import against_best, champion, rank, standing_phrase
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, col, flag_sanity, linked, seeds, variant
from pipeline.reporting.table import cell, markdown_table

TITLE = "Active-learning strategies vs random"
QUESTION = "active-learning"


def compare_with_random(results: Results) -> Section:
    rows = results.of("active_learning")
    runs = results.runs
    labels = mean_curves(results.history(runs[runs.stage == "active_learning"], "test/acc"), "labels")
    chart = curves_chart(
        "active_learning_curves",
        "active_learning.csv",
        labels,
        "labels",
        "labels used",
        "active learning: test accuracy vs labels",
        control=CONTROL,
    )
    if rows.empty:
        return Section(TITLE, "No active-learning runs.", "", charts=[chart])
    columns = {
        "strategy": variant,
        "seeds": seeds,
        "final test acc": col("test/acc"),
        "labels used": col("data/labels_used", "int"),
        "area under curve": col("al/alc"),
        "labels to target": col("al/labels_to_target", "int"),
        "share of random's labels": col("al/label_share_vs_random", "pct"),
        "area gain vs random": col("al/alc_gain_vs_random", "signed"),
    }
    found = rank(results, rows, "al/alc")
    columns |= {"area vs best": against_best(found), "MLflow": linked}
    text = (
        "Every strategy starts from the same labelled seed set and labels the same number of examples per round; "
        "`random` is the control. `area under curve`: mean test accuracy over the labels spanned; `labels to target`: "
        "fewest labels reaching the target accuracy (by default random's final one). `area vs best`: whether a "
        "strategy's area is tied with the largest within noise: a paired t-test over seeds with 3 seeds or more, "
        "both seeds agreeing with the mean gap above the std of the gaps with 2; with 1 seed the area has no noise "
        "estimate (it averages one curve), so the order is a ranking only."
    )
    phrase = standing_phrase(found, rows, lambda row: cell(row, "al/alc"), variant)
    section = Section(
        TITLE,
        text,
        markdown_table((r for _, r in rows.iterrows()), columns),
        f"{TITLE}: area under the curve: {phrase}.",
        metrics={f"active_learning/{row['variant']}/alc": row["al/alc"] for _, row in rows.iterrows()},
        charts=[chart],
        # the headline's question and rule: the strategy that learns fastest, by the area under its curve
        champion=champion(
            results, rows, found, QUESTION, "Active learning: the largest area under the learning curve", phrase,
            "al/alc",
        ),
    )  # fmt: skip
    return flag_sanity(section, rows)
