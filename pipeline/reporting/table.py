"""Runs grouped by (stage, variant): each metric's mean and, with several seeds, its std.

A report cell reads ``0.912 ± 0.008`` over several seeds and ``0.912`` over one.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import pandas as pd

from pipeline.deployment.cost import NONZERO_METRIC, SIZE_METRIC
from pipeline.deployment.inference import LATENCY_P50, LATENCY_P95, THROUGHPUT

Column = Callable[[pd.Series], str]  # a table column: a row's cell

GROUP = ["stage", "paradigm", "variant", "label", "task"]
STD = ":std"  # suffix of a metric's standard deviation column
# Metrics the report reads; a run that does not log one (e.g. bytes communicated outside federated) shows "–".
REPORTED = (
    "test/acc", "test/f1_macro", "data/labels_used", "params/trainable", "params/total",
    "memory/estimated_train_bytes", "memory/measured_state_bytes", "memory/peak_bytes", "time/fit_seconds",
    "comm/bytes_total", SIZE_METRIC, NONZERO_METRIC, LATENCY_P50, LATENCY_P95, THROUGHPUT,
    "al/alc", "al/labels_to_target", "al/label_share_vs_random", "al/alc_gain_vs_random",
    "train/epochs", "train/max_epochs",
)  # fmt: skip


def by_variant(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (stage, variant), in the order runs were listed: ``seeds`` (how many), its runs'
    ``run_ids`` and ``links`` (the stage's own seed first), its ``federated_engine`` tag ("" for none), its
    ``sanity`` warning (the first any of its runs carries, "" for none), each metric's mean and ``<metric>:std``."""
    runs = runs.reindex(columns=[*runs.columns, *(key for key in REPORTED if key not in runs.columns)])
    runs = runs.assign(
        sanity=runs["sanity"].fillna("") if "sanity" in runs else "",
        federated_engine=runs["federated_engine"].fillna("") if "federated_engine" in runs else "",
    )
    metrics = [c for c in runs.columns if "/" in c and pd.api.types.is_numeric_dtype(runs[c])]
    grouped = runs.groupby(GROUP, sort=False, dropna=False)
    table = grouped[metrics].mean()
    table = table.join(grouped[metrics].std(ddof=1).add_suffix(STD))
    table = table.join(
        grouped.agg(
            seeds=("seed", "nunique"),
            run_ids=("run_id", list),
            links=("link", list),
            device=("device", "first"),
            federated_engine=("federated_engine", "first"),  # (not `engine`: a keyword of agg)
            sanity=("sanity", first_warning),
        )
    )
    return table.reset_index()


def first_warning(warnings: pd.Series) -> str:
    """The first non-empty warning among a variant's runs (one seed's warning is the variant's)."""
    return next((w for w in warnings if isinstance(w, str) and w), "")


def number(value: float, kind: str = "") -> str:
    """``acc``: 3 decimals; ``int``: thousands separated; ``bytes``: KiB/MiB/GiB; ``s``: seconds; ``pct``: percent;
    ``ms``: three significant digits (a latency of 0.0412 ms and one of 12.3 ms both read as measured)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "bytes":
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= size:
                return f"{value / size:.1f} {unit}"
        return f"{value:.0f} B"
    if kind == "s":
        return f"{value:.1f}"
    if kind == "ms":
        digits = 2 - math.floor(math.log10(abs(value))) if value else 2
        return f"{value:,.{max(0, digits)}f}"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "signed":
        return f"{value:+.3f}"
    return f"{value:.3f}"


def cell(row: pd.Series, metric: str, kind: str = "") -> str:
    """The metric's mean, ``± std`` when several seeds ran and it varies, ``–`` when the run does not log it."""
    mean = row.get(metric, math.nan)
    std = row.get(metric + STD, math.nan)
    text = number(mean, kind)
    if text != "–" and row.get("seeds", 1) > 1 and not math.isnan(std) and std > 0:  # counts do not vary: no "± 0"
        text += f" ± {number(std, kind).lstrip('+')}"
    return text


def shown(rows: Iterable[pd.Series], columns: dict[str, Callable[[pd.Series], str]]) -> pd.DataFrame:
    """``columns`` maps a header to how a row shows under it: a table of text."""
    return pd.DataFrame(
        [{header: show(row) for header, show in columns.items()} for row in rows], columns=list(columns)
    )


def markdown_table(rows: Iterable[pd.Series], columns: dict[str, Callable[[pd.Series], str]]) -> str:
    frame = shown(rows, columns)
    return frame.to_markdown(index=False, disable_numparse=True) if len(frame) else "_no runs_"
