"""The report's section on the fine-tuning variants: full, partial and the adapters, with what each trains and saves."""

from __future__ import annotations

from pipeline.compare.sections import Results, Section, before_link, col, delta, pick, variant
from pipeline.compare.table import markdown_table, number

TITLE = "Fine-tuning variants: full, partial and the adapters (LoRA, LoRA-FA, VeRA)"


def compare_variants(results: Results) -> Section:
    rows = results.of("finetune")
    if rows.empty:
        return Section(TITLE, "No fine-tuning runs.", "")
    full = rows[rows.variant == "full"]["test/acc"]
    columns = {
        "variant": variant,
        **pick("seeds", "trainable params"),
        "trainable share": lambda row: number(row["params/trainable"] / row["params/total"], "pct"),
        **pick("test acc", "macro-F1", "est. model state"),
        "saved model": col("model/checkpoint_bytes", "bytes"),
        **pick("fit s", "MLflow"),
    }
    if not full.empty:
        columns = before_link(columns, "Δ acc vs full", delta("test/acc", full.iloc[0]))
    smallest = rows.loc[rows["params/trainable"].idxmin()]
    headline = (
        f"{TITLE.split(':')[0]}: {smallest['variant']} trains {number(smallest['params/trainable'], 'int')} "
        f"parameters for {number(smallest['test/acc'])} accuracy"
        + (f" (full: {number(full.iloc[0])})." if not full.empty else ".")
    )
    text = (
        "Every variant starts from the same base on the same target data. Adapters train few parameters and save "
        "only those (`saved model`); their weights and optimizer state shrink with them."
    )
    return Section(TITLE, text, markdown_table((r for _, r in rows.iterrows()), columns), headline)
