"""The comparison as text: the markdown report, and the short summary printed on the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from pipeline.compare.registry import CHALLENGER, CHAMPION, PROMOTE
from pipeline.reporting.sections import Section, seeds
from pipeline.reporting.table import cell, shown

TERMINAL = {
    "run": lambda row: row["label"],
    "task": lambda row: row["task"],
    "seeds": seeds,
    "test acc": lambda row: cell(row, "test/acc"),
    "macro-F1": lambda row: cell(row, "test/f1_macro"),
    "labels": lambda row: cell(row, "data/labels_used", "int"),
    "trainable": lambda row: cell(row, "params/trainable", "int"),
    "est. state": lambda row: cell(row, "memory/estimated_train_bytes", "bytes"),
    "measured state": lambda row: cell(row, "memory/measured_state_bytes", "bytes"),
    "fit s": lambda row: cell(row, "time/fit_seconds", "s"),
    "communicated": lambda row: cell(row, "comm/bytes_total", "bytes"),
}


def markdown(
    sections: list[Section], images: list[Path], source: str, compare_link: str, why_experiment: Optional[str] = None
) -> str:
    names = {path.stem: path for path in images}
    parts = [
        "# Paradigm comparison",
        "Every run behind the current outputs (the run ids in `metrics/<stage>/*.json`), read back from MLflow: "
        f"{source}. "
        f"This report is also the [`compare` run]({compare_link}) in the MLflow UI; each row links to its run. "
        "With several seeds (`repeats` in params.yaml) a cell reads mean ± std. A headline names a winner only "
        "when it beats every other beyond noise (McNemar on the test examples with 1 or 2 seeds, a paired t-test "
        "over seeds with 3 or more), else it lists who is tied within noise; each says how many seeds are behind "
        "it.",
        "## Headlines",
        headlines(sections, why_experiment),
    ]
    for section in sections:
        parts += [f"## {section.title}", section.text]
        parts += [part for part in (section.table, section.extra) if part]
        parts += [
            f"![{chart.name}](figures/{names[chart.name].name})" for chart in section.charts if chart.name in names
        ]
    return "\n\n".join(parts) + "\n"


def headlines(sections: list[Section], why_experiment: Optional[str] = None) -> str:
    """A line per headline and, under it, the champion its question registers, by the headline's rule. An
    experiment's winners are challengers (:mod:`pipeline.compare.registry`): a last line says why and how one wins."""
    role = CHAMPION if why_experiment is None else CHALLENGER
    lines = []
    for section in sections:
        if section.headline:
            lines.append(f"- {section.headline}")
            if section.champion is not None:
                lines.append(f"  - {section.champion.line(role)}")
    if why_experiment is not None and any(section.champion is not None for section in sections):
        lines.append(
            f"\nAn experiment ({why_experiment}): each winner is its question's {CHALLENGER}, and the model registry's "
            f"@{CHAMPION} aliases stay where the main run put them; `{PROMOTE}` makes the challengers the champions."
        )
    return "\n".join(lines)


def mlflow_note(sections: list[Section], report_artifact: str, why_experiment: Optional[str] = None) -> str:
    """The compare run's description in the MLflow UI: the headlines (MLflow caps a tag's length)."""
    return (
        f"## Paradigm comparison\n{headlines(sections, why_experiment)}\n\n"
        f"The full report, tables and figures: artifacts `{report_artifact}`."
    )


def terminal_summary(table: pd.DataFrame, sections: list[Section], why_experiment: Optional[str] = None) -> str:
    text = shown((row for _, row in table.iterrows()), TERMINAL).to_string(index=False)
    return f"{text}\n\n{headlines(sections, why_experiment)}\n"
