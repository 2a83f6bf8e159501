"""``python -m pipeline.compare``: print the last comparison (what ``make run`` ends with).

``python -m pipeline.compare --promote``: make each question's challenger (an experiment's winner) its champion
in the MLflow Model Registry, in the store and experiment params.yaml names (:mod:`pipeline.compare.registry`).
"""

from __future__ import annotations

from pipeline.cli import ArgumentParser, cli_entry
from pipeline.paths import REPORTS_DIR


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m pipeline.compare", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--promote",
        action="store_true",
        help="point each question's @champion at the version its @challenger names, and remove the challenger",
    )
    return p


@cli_entry
def main() -> None:
    if parser().parse_args().promote:
        promote()
        return
    summary = REPORTS_DIR / "summary.txt"
    print(summary.read_text() if summary.is_file() else "no comparison yet: run `dvc repro` (or `make run`)")
    print(f"Full report: {REPORTS_DIR / 'comparison.md'}")


def promote() -> None:
    from mlflow.tracking import MlflowClient  # MLflow loads in seconds: printing the summary needs none of it

    from pipeline.compare.registry import promote_challengers
    from pipeline.params import load_params
    from pipeline.tracking.store import open_store

    params = load_params()
    client = MlflowClient(open_store(params.tracking))
    for line in promote_challengers(client, params.tracking.experiment):
        print(line)


if __name__ == "__main__":
    main()
