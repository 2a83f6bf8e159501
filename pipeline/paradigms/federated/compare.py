"""The report's section on federated learning: every partition and strategy against centralised training
on the pooled data, with the global model's accuracy per round as its chart."""

from __future__ import annotations

from typing import Optional

import pandas as pd

from pipeline.reporting.charts import Chart, curves_chart, mean_curves
from pipeline.reporting.headline import against_best, champion, rank, standing_phrase, verdict_cell, verdict_words
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, before_link, delta, epochs, flag_sanity, pick, variant
from pipeline.reporting.significance import compare
from pipeline.reporting.table import cell, markdown_table

TITLE = "Federated (IID, non-IID, strategies) vs centralised"
QUESTION = "federated"


def compare_with_centralized(results: Results) -> Section:
    rows = results.of("federated")
    fl = rows[rows.paradigm == "federated"]
    central = rows[rows.paradigm != "federated"]
    chart = _rounds_chart(results, central.iloc[0]["test/acc"] if len(central) else None)
    if fl.empty:
        return Section(TITLE, "No federated runs.", "", charts=[chart])
    found = rank(results, fl)
    columns = {
        "run": variant,
        "engine": lambda row: row["federated_engine"] or "–",
        **pick("seeds", "test acc", "macro-F1", "bytes communicated", "labels used", "fit s", "MLflow"),
    }
    columns = before_link(columns, "vs best federated", against_best(found))
    phrase = standing_phrase(found, fl, lambda row: cell(row, "test/acc"), variant)
    headline = f"{TITLE}: {phrase}"
    metrics = {}
    if not central.empty:
        centre = central.iloc[0]
        centre_scores = results.scores(centre)
        versus = {row["label"]: compare(results.scores(row), centre_scores) for _, row in fl.iterrows()}
        columns = before_link(columns, "Δ acc vs centralised", delta("test/acc", centre["test/acc"]))
        columns = before_link(columns, "vs centralised", lambda row: verdict_cell(versus.get(row["label"])))
        metrics = {
            f"federated/{row['variant']}/acc_vs_centralized": row["test/acc"] - centre["test/acc"]
            for _, row in fl.iterrows()
        }
        best = fl[fl.label == found.best].iloc[0]
        centralised = f"centralised at {cell(centre, 'test/acc')}"
        headline += f"; {best['variant']} {verdict_words(versus[found.best], centralised)}"
    columns = before_link(columns, "epochs", epochs(results, rows))
    text = (
        "Clients hold prepare's partitions of the full training split: `iid`, or skewed by label (`dirichlet`, "
        "`shards`); only model updates travel, in this process or on Flower (`engine`). The global model after the "
        "last round is tested on the full test split. Centralised training pools the same data with the same model, "
        "start and epoch budget. "
        "`vs best federated` and `vs centralised`: above, below or tied within noise (docs/comparison.md says how it "
        "is decided)."
    )
    section = Section(
        TITLE,
        text,
        markdown_table((r for _, r in rows.iterrows()), columns),
        headline + ".",
        metrics=metrics,
        charts=[chart],
        champion=champion(results, fl, found, QUESTION, "Federated: the most accurate global model", phrase),
    )
    return flag_sanity(section, rows)


def _rounds_chart(results: Results, centralized_acc: Optional[float]) -> Chart:
    """Every federated run's global test accuracy per round (mean over seeds), centralised drawn flat."""
    runs = results.runs
    rounds = mean_curves(
        results.history(runs[(runs.stage == "federated") & (runs.paradigm == "federated")], "test/acc"), "round"
    )
    if not rounds.empty and centralized_acc is not None:
        flat = pd.DataFrame(
            {"variant": "centralized (final)", "round": sorted(rounds["round"].unique()), "test/acc": centralized_acc}
        )
        rounds = pd.concat([rounds, flat], ignore_index=True)
    reference = ("centralised", centralized_acc) if centralized_acc is not None else None
    return curves_chart(
        "federated_rounds",
        "federated_rounds.csv",
        rounds,
        "round",
        "round",
        "federated: global test accuracy per round",
        reference=reference,
    )
