"""The report's section on the target task: transfer against fine-tuning against the scratch control."""

from __future__ import annotations

from pipeline.reporting.headline import against_best, champion, rank, standing_phrase
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, before_link, delta, epochs, flag_sanity, pick
from pipeline.reporting.table import cell, markdown_table, number

TITLE = "Transfer vs fine-tune vs scratch (target task)"
QUESTION = "target-task"


def compare_on_target(results: Results) -> Section:
    table = results.table
    rows = table[
        (table.stage == "transfer")
        | (table.stage == "scratch")
        | ((table.stage == "finetune") & table.variant.isin(["full", "partial"]))
    ]
    if rows.empty:
        return Section(TITLE, "No transfer, full or partial fine-tuning, or scratch runs.", "")
    scratch = rows[rows.stage == "scratch"]
    base = table[table.stage == "pretrain"]
    text = (
        "Same scarce target data, same target test split. Transfer trains new top layers on the frozen base; "
        "fine-tuning trains the base's layers too; scratch is the same architecture from random weights. "
        "`vs best`: tied within noise with the best, or worse (docs/comparison.md says how it is decided)."
    )
    if not base.empty:
        labels = number(base.iloc[0]["data/labels_used"], "int")
        text += f" The base was pretrained on {labels} source labels (not counted below)."
    found = rank(results, rows)
    columns = pick("run", "seeds", "test acc", "macro-F1", "labels used", "trainable params", "total params",
                   "est. model state", "fit s", "MLflow")  # fmt: skip
    columns = before_link(columns, "vs best", against_best(found))
    columns = before_link(columns, "epochs", epochs(results, rows))
    metrics = {}
    if not scratch.empty:
        columns = before_link(columns, "Δ acc vs scratch", delta("test/acc", scratch.iloc[0]["test/acc"]))
        metrics = {
            f"{row['label']}/acc_vs_scratch": row["test/acc"] - scratch.iloc[0]["test/acc"]
            for _, row in rows.iterrows()
            if row.stage != "scratch"
        }
    phrase = standing_phrase(found, rows, lambda row: cell(row, "test/acc"), lambda row: row["label"])
    headline = f"{TITLE}: {phrase}"
    if not scratch.empty and scratch.iloc[0]["label"] not in found.tied:
        headline += f"; scratch {cell(scratch.iloc[0], 'test/acc')}"
    section = Section(
        TITLE,
        text,
        markdown_table((r for _, r in rows.iterrows()), columns),
        headline + ".",
        metrics=metrics,
        champion=champion(results, rows, found, QUESTION, TITLE, phrase),
    )
    return flag_sanity(section, rows)
