"""Who leads a question and how the report says it: one rule for every section.

:func:`rank` decides who leads and who is tied within noise (:mod:`pipeline.reporting.significance`),
:func:`standing_phrase` words it with the seeds behind it (:func:`headline_seeds`), :func:`champion` picks the run
to register by the same rule (a tie within noise broken by :data:`TIE_BREAK`), and :func:`against_best`,
:func:`verdict_words` and :func:`verdict_cell` show a verdict in a table or a sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pandas as pd

from pipeline.reporting.results import Results
from pipeline.reporting.significance import Standing, Verdict, standing
from pipeline.reporting.table import Column, number


@dataclass(frozen=True)
class Champion:
    """The run a question picks: the compare stage registers its MLflow Model as the question's champion
    (:mod:`pipeline.compare.registry`), and the report names it under the section's headline."""

    question: str  # stable: the registered model is named <experiment>-<question>
    asks: str  # the question in words (the registered model's description)
    run_id: str
    label: str  # the run's stage/variant
    metric: str  # what it was picked on
    value: float  # the picked run's own value of it
    standing: str  # how it stands against the others, in the report's words
    chosen_by: str  # how it won: the headline's rule
    tie_break: str  # how a tie within noise was broken, or why there was none

    def line(self, role: str = "champion") -> str:
        """The champion in the report's words, under its section's headline (``challenger`` in an experiment)."""
        return f"{role} `{self.label}`: {self.chosen_by}; {self.tie_break}"


def headline_seeds(rows: pd.DataFrame) -> str:
    """How many seeds are behind a headline: ``1 seed``, ``3 seeds``, or ``2–3 seeds`` when rows differ."""
    counts = sorted({int(n) for n in rows["seeds"]})
    if not counts:
        return "no seeds"
    shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{shown} seed{'' if counts == [1] else 's'}"


def rank(results: Results, rows: pd.DataFrame, metric: str = "test/acc") -> Standing:
    """The row with the best mean ``metric`` and every other against it, keyed by ``label``."""
    return standing({row["label"]: results.scores(row, metric) for _, row in rows.iterrows()})


def standing_phrase(found: Standing, rows: pd.DataFrame, value: Column, name: Column) -> str:
    """Who leads, in words: ``best X at 0.812 (1 seed; beats every other: McNemar p < 0.05)`` only when the best
    beats every other, else ``tie within noise: X 0.812, Y 0.804 (1 seed, McNemar p ≥ 0.05)``, or, where nothing
    could be tested, ``ranking only``. ``value`` and ``name`` show a row's score and name."""
    by = {row["label"]: row for _, row in rows.iterrows()}
    best, seeds_behind = by[found.best], headline_seeds(rows)

    def rules(labels) -> str:
        return "; ".join(dict.fromkeys(found.against[label].rule() for label in labels))

    if not found.against:
        return f"only {name(best)} at {value(best)} ({seeds_behind})"
    if all(verdict.test == "none" for verdict in found.against.values()):
        return f"{name(best)} first at {value(best)} ({seeds_behind}: ranking only, not significant)"
    if found.clear:
        return f"best {name(best)} at {value(best)} ({seeds_behind}; beats every other: {rules(found.against)})"
    tied = found.tied
    below = len(by) - len(tied)
    listed = ", ".join(f"{name(by[label])} {value(by[label])}" for label in tied)
    worse = f"; {below} other{'s' if below > 1 else ''} worse beyond noise" if below else ""
    return f"tie within noise: {listed} ({seeds_behind}, {rules(tied[1:])}){worse}"


# Among variants tied within noise, the one to register: the cheapest to train and store, then to deploy.
TIE_BREAK = "the fewest trainable parameters, then the smallest saved model, then the higher mean"


def champion(
    results: Results,
    rows: pd.DataFrame,
    found: Standing,
    question: str,
    asks: str,
    standing: str,
    metric: str = "test/acc",
) -> Champion:
    """The run to register for a ranked question, by the rule its headline ranks by (``found``, on ``metric``):
    the best variant, or among those tied with it within noise the one :data:`TIE_BREAK` picks; of its seeds, the
    run best on ``metric``."""
    by = {row["label"]: row for _, row in rows.iterrows()}

    def cost(label: str) -> tuple[float, float, float]:
        row = by[label]
        return (_or_inf(row.get("params/trainable")), _or_inf(row.get("model/size_bytes")), -found.means[label])

    tied = found.tied
    label = min(tied, key=cost)
    chosen_by = f"the highest mean {metric}, as the headline ranks"
    if len(tied) == 1:
        tie_break = "no tie: it beats every other beyond noise" if found.against else "no tie: the only variant"
    else:
        row = by[label]
        others = ", ".join(other for other in tied if other != label)
        untested = all(found.against[other].test == "none" for other in tied if other != found.best)
        reason = "not told apart (no noise estimate)" if untested else "tied within noise"
        tie_break = (
            f"{reason} with {others}, broken by {TIE_BREAK}: "
            f"{number(row.get('params/trainable'), 'int')} trainable, {number(row.get('model/size_bytes'), 'bytes')} "
            f"saved, mean {found.means[label]:.4f}"
        )
    return _best_seed(results, rows, label, question, asks, standing, metric, chosen_by, tie_break)


def chosen(
    results: Results, rows: pd.DataFrame, label: str, question: str, asks: str, standing: str, chosen_by: str
) -> Champion:
    """The run to register for a question that names its variant by a rule of its own (``chosen_by``: the smallest
    model within a point of the reference, the shared network): of the variant's seeds, the most accurate."""
    return _best_seed(
        results, rows, label, question, asks, standing, "test/acc", chosen_by, "no tie: the rule names one"
    )


def _best_seed(
    results: Results,
    rows: pd.DataFrame,
    label: str,
    question: str,
    asks: str,
    standing: str,
    metric: str,
    chosen_by: str,
    tie_break: str,
) -> Champion:
    picked = rows[rows.label == label].iloc[0]
    runs = results.runs[results.runs.run_id.isin(picked["run_ids"])]
    run = runs.loc[runs[metric].astype(float).idxmax()]
    return Champion(question, asks, run.run_id, label, metric, float(run[metric]), standing, chosen_by, tie_break)


def _or_inf(value: object) -> float:
    value = float(value) if value is not None else math.nan
    return math.inf if math.isnan(value) else value


def against_best(found: Standing) -> Column:
    """A table column: ``best``, ``tied (McNemar p = 0.41)`` or ``worse (…)`` against the best row."""

    def show(row: pd.Series) -> str:
        if row["label"] == found.best:
            return "best"
        verdict = found.against.get(row["label"])
        return "–" if verdict is None else f"{'worse' if verdict.a_wins else 'tied'} ({verdict.detail()})"

    return show


def verdict_words(verdict: Verdict, other: str) -> str:
    """A verdict of one row against ``other`` in words: ``above other (…)``, ``below other (…)`` or ``tied with
    other within noise (…)``, with the test that decided it."""
    if verdict.a_wins:
        return f"above {other} ({verdict.detail()})"
    if verdict.b_wins:
        return f"below {other} ({verdict.detail()})"
    return f"tied with {other} within noise ({verdict.detail()})"


def verdict_cell(verdict: Optional[Verdict]) -> str:
    """A verdict as a table cell: ``above (…)``, ``below (…)`` or ``tied (…)``; ``–`` for none."""
    if verdict is None:
        return "–"
    return f"{'above' if verdict.a_wins else 'below' if verdict.b_wins else 'tied'} ({verdict.detail()})"
