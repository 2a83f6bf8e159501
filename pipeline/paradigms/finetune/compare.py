"""The report's section on the fine-tuning variants: full, partial and the adapters (PEFT's and the SVD ones), with
what each trains and saves."""

from __future__ import annotations

from pipeline.reporting.headline import against_best, champion, headline_seeds, rank, standing_phrase, verdict_words
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, before_link, col, delta, epochs, flag_sanity, pick, variant
from pipeline.reporting.significance import compare
from pipeline.reporting.table import cell, markdown_table, number

TITLE = (
    "Fine-tuning variants: full, partial and the adapters (LoRA, LoRA-FA, VeRA, LoRA-FA with an SVD basis, "
    "SVD diagonal + sparse, PiSSA)"
)
QUESTION = "finetune"


def compare_variants(results: Results) -> Section:
    rows = results.of("finetune")
    if rows.empty:
        return Section(TITLE, "No fine-tuning runs.", "")
    full = rows[rows.variant == "full"]
    found = rank(results, rows)
    columns = {
        "variant": variant,
        **pick("seeds", "trainable params"),
        "trainable share": lambda row: number(row["params/trainable"] / row["params/total"], "pct"),
        **pick("test acc", "macro-F1", "est. model state"),
        "saved model": col("model/size_bytes", "bytes"),
        **pick("fit s", "MLflow"),
    }
    if not full.empty:
        columns = before_link(columns, "Δ acc vs full", delta("test/acc", full.iloc[0]["test/acc"]))
    columns = before_link(columns, "vs best", against_best(found))
    columns = before_link(columns, "epochs", epochs(results, rows))
    smallest = rows.loc[rows["params/trainable"].idxmin()]
    headline = (
        f"{TITLE.split(':')[0]} ({headline_seeds(rows)}): {smallest['variant']} trains "
        f"{number(smallest['params/trainable'], 'int')} parameters for {cell(smallest, 'test/acc')} accuracy"
    )
    if not full.empty and smallest["variant"] != "full":
        verdict = compare(results.scores(smallest), results.scores(full.iloc[0]))
        headline += ", " + verdict_words(verdict, f"full at {cell(full.iloc[0], 'test/acc')}")
    text = (
        "Every variant starts from the same base on the same target data. Adapters train few parameters and save "
        "only those (`saved model`); their weights and optimizer state shrink with them. `lora_fa_svd` fixes "
        "LoRA-FA's frozen side to the top singular vectors of each weight, `svd_diag` trains the singular values "
        "of its top-r part and a sparse residual, `pissa` starts LoRA from the top-r singular part (docs/"
        "transfer-and-fine-tuning.md). `vs best`: tied within noise with the most accurate variant, or worse "
        "(docs/comparison.md says how it is decided)."
    )
    phrase = standing_phrase(found, rows, lambda row: cell(row, "test/acc"), variant)
    headline += f"; the most accurate: {phrase}"  # the ranking the champion is chosen by
    best = champion(results, rows, found, QUESTION, f"{TITLE.split(':')[0]}: the most accurate", phrase)
    section = Section(
        TITLE, text, markdown_table((r for _, r in rows.iterrows()), columns), headline + ".", champion=best
    )
    return flag_sanity(section, rows)
