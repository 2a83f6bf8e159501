"""The report's section on compression: each compressed teacher against the uncompressed reference, and the
smallest one that stays within a point of its accuracy."""

from __future__ import annotations

import math

import pandas as pd

from pipeline.reporting.headline import chosen, headline_seeds, verdict_cell
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, before_link, col, flag_sanity, pick, variant
from pipeline.reporting.significance import compare
from pipeline.reporting.table import cell, markdown_table, number

TITLE = "Compression: smaller models against the uncompressed teacher (full task)"
QUESTION = "compress"
WITHIN = 0.01  # "almost as accurate": at most one point of test accuracy below the reference


def compare_compressions(results: Results) -> Section:
    rows = in_order(results.of("compress"))
    if rows.empty:
        return Section(TITLE, "No compress runs.", "")
    text = (
        "Distill's teacher compressed after training. `prune-s`: global magnitude pruning of the linear and "
        "convolution weights to sparsity s, then a short fine-tune with the zeros held, saved as a bit mask and the "
        "non-zero values; `int8`: dynamic int8 linear layers (run on the CPU); `fp16`: half-precision weights. "
        "`Δ acc`: against `reference`, the same teacher uncompressed, scored and timed in the same process; `vs "
        "reference`: whether the difference is beyond noise. A pruned model is dense in memory with zeros in place: "
        "it only runs faster on hardware with sparse kernels, and the timings show whether it does here."
    )
    reference = rows[rows.variant == "reference"]
    ref = reference.iloc[0] if not reference.empty else None
    columns = pick("run", "seeds", "test acc", "MLflow")
    columns["run"] = variant
    columns = before_link(columns, "Δ acc", lambda row: _drop(row))
    if ref is not None:
        columns = before_link(columns, "vs reference", _against(results, ref))
    columns = before_link(columns, "sparsity", col("compress/sparsity", "pct"))
    columns = before_link(columns, "non-zero weights", col("model/nonzero_weights", "int"))
    columns = before_link(columns, "size on disk", col("model/size_bytes", "bytes"))
    columns = before_link(columns, "size / reference", col("compress/size_ratio", "pct"))
    columns = before_link(columns, "latency p50 ms", col("deploy/latency_ms_p50", "ms"))
    columns = before_link(columns, "latency / reference", col("compress/latency_ratio", "pct"))
    columns = before_link(columns, "samples/s", col("deploy/throughput_samples_per_s", "int"))
    table = markdown_table((r for _, r in rows.iterrows()), columns)
    if ref is None:
        return flag_sanity(Section(TITLE, text, table, f"{TITLE}: no reference run to compare with."), rows)
    close = rows[(rows.variant != "reference") & (rows["compress/acc_drop"] <= WITHIN)]
    if close.empty:
        headline = (
            f"Compression: no variant stays within {WITHIN:.0%} of the reference's accuracy ({headline_seeds(rows)})."
        )
        return flag_sanity(Section(TITLE, text, table, headline), rows)
    smallest = close.loc[close["model/size_bytes"].idxmin()]
    shrink = 1 - smallest["compress/size_ratio"]
    headline = (
        f"Compression: the smallest model within one point of the reference is {smallest['variant']}, "
        f"{number(shrink, 'pct')} smaller on disk, test accuracy {cell(smallest, 'test/acc')} against "
        f"{cell(ref, 'test/acc')} ({_against(results, ref)(smallest)}; {headline_seeds(rows)}), latency "
        f"{number(smallest['compress/latency_ratio'], 'pct')} of the reference's."
    )
    metrics = {
        "compress/smallest_within_1pt_size_ratio": float(smallest["compress/size_ratio"]),
        "compress/smallest_within_1pt_acc_drop": float(smallest["compress/acc_drop"]),
    }
    section = Section(
        TITLE,
        text,
        table,
        headline,
        metrics=metrics,
        champion=chosen(
            results, rows, smallest["label"], QUESTION, "The smallest compressed model within one point of the "
            "uncompressed teacher", headline, "the smallest saved model within one point of the reference's accuracy",
        ),
    )  # fmt: skip
    return flag_sanity(section, rows)


def in_order(rows: pd.DataFrame) -> pd.DataFrame:
    """The reference first, then pruning by sparsity, then int8 and fp16."""

    def rank(variant: str) -> tuple[int, float]:
        if variant.startswith("prune-"):
            return 1, float(variant.removeprefix("prune-"))
        return {"reference": (0, 0.0), "int8": (2, 0.0), "fp16": (3, 0.0)}.get(variant, (4, 0.0))

    return rows.iloc[sorted(range(len(rows)), key=lambda i: rank(rows.iloc[i]["variant"]))]


def _drop(row: pd.Series) -> str:
    drop = row.get("compress/acc_drop", math.nan)
    return "–" if math.isnan(drop) else number(0.0 - drop, "signed")  # 0.0 - 0.0: "+0.000", not "-0.000"


def _against(results: Results, ref: pd.Series):
    reference = results.scores(ref)
    return lambda row: "–" if row["variant"] == "reference" else verdict_cell(compare(results.scores(row), reference))
