"""A paradigm plug-in written outside the package, as README's "Extending" walks through: the scratch
control with a narrower body, compared with the scratch control.

Its declaration, params section, checks, run and comparison section are all here; the tests register it
with ``pipeline.paradigms.registered(PARADIGM)`` and find it in the schema, the comparison and sweeps
without any of those having been edited. In the project it would be ``pipeline/paradigms/narrow/``
(``__init__``, ``config``, ``run``, ``compare``) with its line in ``BUILT_IN``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from pydantic import Field

from pipeline.config.schema import StageSection
from pipeline.paradigms import Paradigm, Ref
from pipeline.paths import MODEL_FILE, StagePaths
from pipeline.reporting.headline import headline_seeds, verdict_words
from pipeline.reporting.results import Results
from pipeline.reporting.sections import Section, col, flag_sanity, linked, seeds
from pipeline.reporting.significance import compare
from pipeline.reporting.table import markdown_table, number

if TYPE_CHECKING:
    from pipeline.params import Params


class NarrowConfig(StageSection):
    """The ``narrow`` params section."""

    width: int = Field(16, ge=1)  # units of the one body layer


def check_narrow(params: Params) -> None:
    widest = max(params.model.hidden_sizes)
    if params.narrow.width >= widest:
        raise ValueError(f"narrow.width = {params.narrow.width}: must be narrower than model.hidden_sizes ({widest})")


def run_narrow(params: Params, paths: StagePaths | None = None) -> dict[str, dict]:
    from pipeline.data.prepared import load_task
    from pipeline.models.checkpoint import save_classifier
    from pipeline.models.classifier import build_classifier
    from pipeline.paradigms.fitted import train_classifier
    from pipeline.seeding import seed_everything
    from pipeline.tracking.contract import SavedModel

    paths = paths or StagePaths.of(PARADIGM.stage)
    task = load_task(paths.prepared(PARADIGM.task))
    narrow = params.model.model_copy(update={"hidden_sizes": [params.narrow.width]})
    seed_everything(params.seed)
    model = build_classifier(narrow, task.input_shape, task.num_classes)
    saved = SavedModel(
        paths.models / MODEL_FILE,
        lambda path: save_classifier(path, model, narrow, task.input_shape, task.classes),
        lambda: model,  # the network the run's MLflow Model serves
    )
    entry, _ = train_classifier(params, PARADIGM.run_spec("narrow"), model, task, saved)
    return {"narrow": entry}


def compare_narrow(results: Results) -> Section:
    title = "Narrow vs scratch"
    rows, scratch = results.of("narrow"), results.of("scratch")
    columns = {
        "run": lambda row: row["label"],
        "seeds": seeds,
        "test acc": col("test/acc"),
        "trainable params": col("params/trainable", "int"),
        "MLflow": linked,
    }
    narrow, control = rows.iloc[0], scratch.iloc[0]
    verdict = compare(results.scores(narrow), results.scores(control))  # beyond the test set's noise, or a tie
    table = markdown_table((row for _, row in rows.iterrows()), columns)
    section = Section(
        title,
        "The scratch control with one narrow body layer.",
        table,
        f"{title} ({headline_seeds(rows)}): Δ acc {number(verdict.gap, 'signed')}, "
        f"{verdict_words(verdict, 'scratch')}.",
        metrics={"narrow/acc_vs_scratch": verdict.gap},
    )
    return flag_sanity(section, pd.concat([rows, scratch]))  # a stage's sanity warning: no winner named


PARADIGM = Paradigm(
    stage="narrow",
    config=NarrowConfig,
    task="target",
    run=Ref("tests.toy_paradigm:run_narrow"),
    compare=Ref("tests.toy_paradigm:compare_narrow"),
    checks=check_narrow,
)
