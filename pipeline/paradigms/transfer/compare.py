"""The report's section on the target task: transfer against fine-tuning against the scratch control."""

from __future__ import annotations

from pipeline.compare.sections import Results, Section, before_link, delta, pick
from pipeline.compare.table import markdown_table, number

TITLE = "Transfer vs fine-tune vs scratch (target task)"


def compare_on_target(results: Results) -> Section:
    table = results.table
    rows = table[
        (table.stage == "transfer")
        | (table.stage == "scratch")
        | ((table.stage == "finetune") & table.variant.isin(["full", "partial"]))
    ]
    if rows.empty:
        return Section(TITLE, "No transfer, full or partial fine-tuning, or scratch runs.", "")
    scratch = rows[rows.stage == "scratch"]["test/acc"]
    base = table[table.stage == "pretrain"]
    text = (
        "Same scarce target data, same target test split. Transfer trains new top layers on the frozen base; "
        "fine-tuning trains the base's layers too; scratch is the same architecture from random weights."
    )
    if not base.empty:
        labels = number(base.iloc[0]["data/labels_used"], "int")
        text += f" The base was pretrained on {labels} source labels (not counted below)."
    columns = pick("run", "seeds", "test acc", "macro-F1", "labels used", "trainable params", "total params",
                   "est. model state", "fit s", "MLflow")  # fmt: skip
    metrics = {}
    if not scratch.empty:
        columns = before_link(columns, "Δ acc vs scratch", delta("test/acc", scratch.iloc[0]))
        metrics = {
            f"{row['label']}/acc_vs_scratch": row["test/acc"] - scratch.iloc[0]
            for _, row in rows.iterrows()
            if row.stage != "scratch"
        }
    best = rows.loc[rows["test/acc"].idxmax()]
    headline = f"{TITLE}: best {best['label']} at {number(best['test/acc'])}"
    headline += f"; scratch {number(scratch.iloc[0])}." if not scratch.empty else "."
    return Section(TITLE, text, markdown_table((r for _, r in rows.iterrows()), columns), headline, metrics=metrics)
