"""The human labelling loop, outside ``dvc repro``: a person answers the queries instead of the oracle.

    python -m pipeline.paradigms.active_learning.annotate export           # train, score the pool, write the next query
    python -m pipeline.paradigms.active_learning.annotate import FILE.csv  # check and add the answers, export the next
    python -m pipeline.paradigms.active_learning.annotate status

A query is a folder ``<dir>/round_NN/``: ``query.csv`` (columns ``id``, ``image``, ``label``;
fill in ``label`` with one of the dataset's class names) and ``images/<id>.png``. An import is
checked whole before anything is written: unknown or repeated ids, rows missing from the query
and empty or unknown labels are all reported at once, and the labelled set stays as it was.
Each export logs the model trained on the labels so far to one MLflow run per session
(variant ``human/<strategy>``, ``step`` = labels used).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import torch

from pipeline.cli import ArgumentParser, cli_entry
from pipeline.config.schema import SharedParams
from pipeline.data.prepared import TaskData, load_task
from pipeline.errors import DataError, UserError
from pipeline.io import atomic_dir, write_text
from pipeline.models.reuse import starting_classifier
from pipeline.paradigms.active_learning import PARADIGM
from pipeline.paradigms.active_learning.config import CONTROL
from pipeline.paradigms.active_learning.labels import load_seed_state
from pipeline.paradigms.active_learning.learner import Learner
from pipeline.paradigms.active_learning.rounds import PseudoLabels, evaluate, query, query_size, train_round
from pipeline.paradigms.active_learning.session import Session, positions_of
from pipeline.paradigms.active_learning.strategies import STRATEGIES, query_strategy
from pipeline.params import load_params
from pipeline.paths import StagePaths
from pipeline.seeding import rng_for
from pipeline.tracking.figures import as_image
from pipeline.tracking.runs import stage_run
from pipeline.tracking.store import open_store

LABELLING_DIR = Path("labelling")
COLUMNS = ["id", "image", "label"]
PIXELS_PER_CELL = 16  # an 8x8 digit becomes a 128x128 PNG


def export_query(
    params: SharedParams,
    folder: Path = LABELLING_DIR,
    strategy: Optional[str] = None,
    paths: StagePaths = StagePaths.of(PARADIGM.stage),
) -> Optional[Path]:
    """Train on the labels so far, log the result, write the next query; returns its CSV (None when done)."""
    folder = Path(folder)
    data = load_task(paths.prepared(PARADIGM.task))
    session = _open_session(params, folder, strategy, data, paths)
    if session.pending:
        raise UserError(
            f"{_query_csv(folder, session.round + 1)} is waiting for answers: fill in its labels and import it"
        )
    cfg = params.active_learning
    state = session.label_state(data)
    start = starting_classifier(params.model, data, paths.base, cfg.init_from_base, params.seed)
    learner = Learner(start, data.num_classes, params.trainer_for(PARADIGM.stage), cfg.train_steps, warm_start=False)
    rng = rng_for(params.seed, f"{PARADIGM.stage}/human/round_{session.round}")
    X_train = torch.from_numpy(data.X["train"]).to(learner.device)
    done = train_round(
        learner, X_train, state, PseudoLabels.none(), torch.Generator().manual_seed(int(rng.integers(2**62)))
    )
    row = {
        "train/loss": done.loss,
        **evaluate(learner, data, {s: torch.from_numpy(data.X[s]) for s in ("val", "test")}),
    }
    size = query_size(state, cfg) if session.round < cfg.rounds else 0
    if size:
        asked = query(learner, query_strategy(session.strategy), X_train, state, size, cfg, rng)
        row |= {"al/pool_uncertainty": asked.pool_uncertainty, "al/query_uncertainty": asked.query_uncertainty}
        session.pending = [int(i) for i in data.ids["train"][asked.ids]]
        _write_query(folder / f"round_{session.round + 1:02d}", session.pending, data)
    _log_round(params, session, len(state), row)
    session.save(folder)
    print(
        f"labels {len(state)}: test/acc {row['test/acc']:.4f}  test/f1_macro {row['test/f1_macro']:.4f}",
        file=sys.stderr,
    )
    return _query_csv(folder, session.round + 1) if size else None


def import_answers(
    params: SharedParams, csv: Path, folder: Path = LABELLING_DIR, paths: StagePaths = StagePaths.of(PARADIGM.stage)
) -> Session:
    """Add the answers in ``csv`` to the labelled set, or refuse them all and change nothing."""
    folder = Path(folder)
    data = load_task(paths.prepared(PARADIGM.task))
    session = Session.load(folder)
    if session is None or not session.pending:
        raise UserError(
            f"{folder}: no query is waiting for answers; run `python -m pipeline.paradigms.active_learning.annotate "
            "export` first"
        )
    names = [str(c) for c in data.classes]
    answers = read_answers(Path(csv), session.pending, names)
    labels = np.array([names.index(answers[i]) for i in session.pending])
    # the labelled set's own checks, before anything is written
    session.label_state(data).add(positions_of(session.pending, data), labels)
    session.labelled |= {str(i): answers[i] for i in session.pending}
    session.pending, session.round = [], session.round + 1
    session.save(folder)
    imported = f"{len(answers)} label{'' if len(answers) == 1 else 's'}"
    print(f"imported {imported} from {csv}; {len(session.labelled)} labelled", file=sys.stderr)
    return session


def read_answers(path: Path, expected: list[int], classes: list[str]) -> dict[int, str]:
    """The label of every expected id, or a :class:`DataError` naming every problem in the file."""
    try:
        # a spreadsheet's byte-order mark
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read it as CSV ({err})") from None
    missing_columns = [c for c in ("id", "label") if c not in table.columns]
    if missing_columns:
        raise DataError(
            f"{path}: no column {', '.join(missing_columns)} (it has {', '.join(table.columns)}); keep the exported "
            "header"
        )
    problems = []
    ids = pd.to_numeric(table["id"].str.strip(), errors="coerce")
    whole = ids.notna() & (ids == ids.round())
    if not whole.all():
        problems.append(f"ids that are not whole numbers: {table['id'][~whole].tolist()[:10]}")
    table = table[whole].assign(id=ids[whole].astype(np.int64), label=table["label"][whole].str.strip())
    repeated = sorted(table["id"][table["id"].duplicated()].unique().tolist())
    unknown = sorted(set(table["id"]) - set(expected))
    absent = [i for i in expected if i not in set(table["id"])]
    empty = table["id"][table["label"] == ""].tolist()
    invalid = table[(table["label"] != "") & ~table["label"].isin(classes)]
    problems += [f"ids listed twice: {repeated[:10]}"] if repeated else []
    problems += [f"ids that are not in this query: {unknown[:10]}"] if unknown else []
    problems += [f"rows missing for ids: {absent[:10]}"] if absent else []
    problems += [f"no label for ids: {empty[:10]}"] if empty else []
    if len(invalid):
        pairs = [f"{i}: '{v}'" for i, v in zip(invalid["id"][:10], invalid["label"][:10])]
        problems.append(f"labels that are not a class ({', '.join(pairs)}); allowed: {', '.join(classes)}")
    if problems:
        raise DataError(f"{path}: refused, nothing was added; " + "; ".join(problems))
    return dict(zip(table["id"].tolist(), table["label"].tolist()))


def _open_session(
    params: SharedParams, folder: Path, strategy: Optional[str], data: TaskData, paths: StagePaths
) -> Session:
    session = Session.load(folder)
    if session is None:
        chosen = strategy or next((s for s in params.active_learning.strategies if s != CONTROL), CONTROL)
        return Session.begin(chosen, load_seed_state(paths.prepared("active_learning"), data.y["train"]), data)
    if strategy is not None and strategy != session.strategy:
        raise UserError(
            f"{folder}: this session queries with '{session.strategy}'; start a new session in another --dir to use "
            f"'{strategy}'"
        )
    return session


def _write_query(path: Path, row_ids: list[int], data: TaskData) -> None:
    """``query.csv`` and one PNG per example, written whole or not at all."""
    positions = positions_of(row_ids, data)
    with atomic_dir(path) as tmp:
        (tmp / "images").mkdir()
        for row_id, position in zip(row_ids, positions):
            image = np.kron(as_image(data.X["train"][position]), np.ones((PIXELS_PER_CELL, PIXELS_PER_CELL)))
            plt.imsave(tmp / "images" / f"{row_id}.png", image, cmap="gray_r")
        table = pd.DataFrame(
            {"id": row_ids, "image": [f"images/{i}.png" for i in row_ids], "label": ""}, columns=COLUMNS
        )
        write_text(tmp / "query.csv", table.to_csv(index=False))


def _query_csv(folder: Path, round_: int) -> Path:
    return folder / f"round_{round_:02d}" / "query.csv"


def _log_round(params: SharedParams, session: Session, labels: int, row: dict[str, float]) -> None:
    """The model trained on ``labels`` labels, into the session's MLflow run (opened on the first export)."""
    open_store(params.tracking)
    if session.run_id is None:
        with stage_run(params, PARADIGM.run_spec(f"human/{session.strategy}")) as run:
            mlflow.set_tags({"strategy": session.strategy, "oracle": "human"})
            mlflow.log_metrics(row, step=labels)
        session.run_id = run.info.run_id
    else:
        with mlflow.start_run(run_id=session.run_id):
            mlflow.log_metrics(row, step=labels)


def _folder(text: str) -> Path:
    """``--dir``: a folder, or a path where one can be made; an export trains first and writes there last."""
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path.cwd())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"'{text}' cannot be a folder: {existing} is a file")
    return path


def _file(text: str) -> Path:
    """``import``'s CSV: a missing one is refused before params and data are read."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no file '{text}'")
    return Path(text)


@cli_entry
def main() -> None:
    parser = ArgumentParser(
        prog="python -m pipeline.paradigms.active_learning.annotate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dir", type=_folder, default=LABELLING_DIR, help="the session's folder (default: labelling)")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="train on the labels so far and write the next query")
    export.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        help="query strategy of a new session (default: the first uncertainty strategy in params.yaml)",
    )
    answer = commands.add_parser("import", help="add a filled query.csv, then export the next query")
    answer.add_argument("csv", type=_file, help="the filled query.csv")
    answer.add_argument("--stop", action="store_true", help="import only; do not export the next query")
    commands.add_parser("status", help="say how many examples are labelled and what is waiting")
    args = parser.parse_args()
    params = load_params()
    if args.command == "status":
        session = Session.load(args.dir)
        waiting = (
            f"; {_query_csv(args.dir, session.round + 1)} waits for answers" if session and session.pending else ""
        )
        rounds = f"{session.round} round{'' if session.round == 1 else 's'}" if session else ""
        print(
            f"{args.dir}: no session yet"
            if session is None
            else f"{args.dir}: {session.strategy}, {len(session.labelled)} labelled after {rounds}{waiting}"
        )
        return
    if args.command == "import":
        import_answers(params, args.csv, args.dir)
        if args.stop:
            return
    csv = export_query(params, args.dir, getattr(args, "strategy", None))
    print(
        f"next: label {csv}, then run `python -m pipeline.paradigms.active_learning.annotate import {csv}`"
        if csv
        else "done: the round or label budget is spent"
    )


if __name__ == "__main__":
    main()
