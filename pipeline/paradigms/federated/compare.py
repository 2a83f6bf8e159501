"""The report's section on federated learning: every partition and strategy against centralised training
on the pooled data, with the global model's accuracy per round as its chart."""

from __future__ import annotations

from typing import Optional

import pandas as pd

from pipeline.compare.charts import Chart, curves_chart, mean_curves
from pipeline.compare.sections import Results, Section, before_link, delta, pick, variant
from pipeline.compare.table import markdown_table, number

TITLE = "Federated (IID, non-IID, strategies) vs centralised"


def compare_with_centralized(results: Results) -> Section:
    rows = results.of("federated")
    fl = rows[rows.paradigm == "federated"]
    central = rows[rows.paradigm != "federated"]["test/acc"]
    chart = _rounds_chart(results, central.iloc[0] if len(central) else None)
    if fl.empty:
        return Section(TITLE, "No federated runs.", "", charts=[chart])
    columns = {
        "run": variant,
        **pick("seeds", "test acc", "macro-F1", "bytes communicated", "labels used", "fit s", "MLflow"),
    }
    metrics, headline = (
        {},
        f"{TITLE}: best {fl.loc[fl['test/acc'].idxmax(), 'variant']} at {number(fl['test/acc'].max())}",
    )
    if not central.empty:
        columns = before_link(columns, "Δ acc vs centralised", delta("test/acc", central.iloc[0]))
        metrics = {
            f"federated/{row['variant']}/acc_vs_centralized": row["test/acc"] - central.iloc[0]
            for _, row in fl.iterrows()
        }
        headline += f"; centralised {number(central.iloc[0])}."
    text = (
        "Clients hold prepare's partitions of the full training split: `iid`, or skewed by label (`dirichlet`, "
        "`shards`); "
        "only model updates travel. The global model after the last round is tested on the full test split. "
        "Centralised training pools the same data with the same model, start and epoch budget."
    )
    return Section(
        TITLE, text, markdown_table((r for _, r in rows.iterrows()), columns), headline, metrics=metrics, charts=[chart]
    )


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
