"""What every benchmark script shares: its command line, params with ``--set`` overrides, a scratch MLflow store,
the mean ± std cells of its tables."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import pandas as pd
import yaml

from pipeline.params import load_params


def benchmark_parser(doc: str, name: str, csv_columns: str) -> argparse.ArgumentParser:
    """``--params``, ``--seeds``, ``--set``, ``--csv`` and ``--log``; the script adds its own options."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a param, e.g. trainer.lr=0.003"
    )
    parser.add_argument("--csv", type=Path, help=f"also write every result ({csv_columns})")
    parser.add_argument("--log", type=Path, default=Path(f"benchmark-{name}.log"), help="per-epoch output")
    return parser


def base_params(args: argparse.Namespace) -> dict:
    """params.yaml (or ``--params``) with the ``--set`` overrides, as a plain tree to vary further."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # "GPU available: ..." once per run
    return with_overrides(load_params(args.params).model_dump(mode="json"), args.set)


def with_overrides(tree: dict, assignments: list[str]) -> dict:
    """Apply ``a.b.c=value`` assignments (values read as YAML, as ``dvc exp run -S`` does)."""
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise SystemExit(f"--set {assignment!r}: expected key=value, e.g. finetune.lora.r=4")
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return tree


@contextmanager
def scratch_store(name: str) -> Iterator[Path]:
    """A temporary folder with its own MLflow store: benchmark runs never reach the project's mlflow.db."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    with tempfile.TemporaryDirectory(prefix=f"benchmark-{name}-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        try:
            yield Path(tmp)
        finally:  # the caller's store again (a test's, a team's server)
            if before is None:
                del os.environ["MLFLOW_TRACKING_URI"]
            else:
                os.environ["MLFLOW_TRACKING_URI"] = before


def show_table(table: pd.DataFrame, csv: Optional[Path], heading: str) -> None:
    """Print ``heading`` and ``table`` as markdown (what docs/benchmarks.md holds); with ``csv``, write it there too."""
    print(f"\n{heading}\n")
    print(table.to_markdown(index=False))
    if csv:
        table.to_csv(csv, index=False)


def mean_std(values: pd.Series, digits: int = 3) -> str:
    """A table cell: mean ± std over the seeds (std 0 for one seed; a dash when there is no value)."""
    values = values.dropna()
    if values.empty:
        return "–"
    std = values.std() if len(values) > 1 else 0.0
    return f"{values.mean():,.{digits}f} ± {std:,.{digits}f}"
