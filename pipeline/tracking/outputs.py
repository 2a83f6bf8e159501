"""Files a stage writes for DVC: its headline numbers under ``metrics/<stage>/`` and the CSVs behind ``dvc plots``.

DVC's metrics table has a row per file and a column per key of any file, so each variant gets a file of its own
with the same few short keys: ``metrics/<stage>/<variant>.json`` holds its mean over seeds of a few headline numbers
and ``run_ids``, the MLflow runs behind them (a list, which DVC's tables leave out), that the comparison reads. Every
other metric stays in the runs, in MLflow and the report.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pandas as pd

from pipeline.io import atomic_dir, atomic_path
from pipeline.paths import METRICS_DIR, metrics_dir_of

SKIPPED = "skipped"  # metrics/<stage>/skipped.json: the stage had nothing to run on this data, and says why
SEED_RUN = re.compile(r"(?P<variant>.+)@seed\d+")  # an extra seed's run: pipeline.paradigms.repeats names it so


def _decimals(places: int) -> Callable[[float], float]:
    return lambda value: round(value, places)


def _significant(digits: int) -> Callable[[float], float]:
    return lambda value: float(f"{value:.{digits}g}")


# Per key of a variant's file: the run's metric, the factor to its unit, and its rounding (a headline; MLflow keeps
# every digit). Short, and the same for every stage, so that `dvc metrics show` stays a few columns wide.
HEADLINE: dict[str, tuple[str, float, Callable[[float], float]]] = {
    "acc": ("test/acc", 1.0, _decimals(4)),
    "f1": ("test/f1_macro", 1.0, _decimals(4)),
    "trainable": ("params/trainable", 1.0, round),
    "train_mb": ("memory/estimated_train_bytes", 1e-6, _significant(4)),
    "size_kb": ("model/size_bytes", 1e-3, _significant(4)),
    "fit_s": ("time/fit_seconds", 1.0, _significant(4)),
}
SPREAD = ("acc_std", "test/acc", _decimals(4))  # with several seeds: the accuracy's standard deviation


def write_stage_metrics(
    stage: str, runs: dict[str, dict[str, Any]], metrics_dir: Path = METRICS_DIR, skipped: Optional[str] = None
) -> Path:
    """``runs`` maps a variant (``<variant>@seed<N>`` for an extra seed's run) to ``{"run_id": ..., <metric>:
    value}``; each variant's file goes to ``metrics/<stage>/``, replacing the folder whole so that a variant no longer
    run leaves no file. A stage with nothing to run on this data writes ``skipped.json``: no runs, and why (the
    comparison says it)."""
    files = {SKIPPED: {"run_ids": [], SKIPPED: [skipped]}} if skipped else headlines(runs)
    return write_metrics_dir(metrics_dir_of(stage, metrics_dir), files)


def headlines(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: the mean over its seeds of each :data:`HEADLINE` number its runs logged, ``acc_std`` with several
    seeds, and ``run_ids``, its own seed's run first."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for key, entry in sorted(runs.items(), key=lambda item: SEED_RUN.fullmatch(item[0]) is not None):
        seeded = SEED_RUN.fullmatch(key)
        by_variant.setdefault(seeded["variant"] if seeded else key, []).append(entry)
    return {variant: _headline(entries) for variant, entries in by_variant.items()}


def _headline(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's file, from its runs' entries, its own seed's first."""
    found: dict[str, Any] = {}
    for key, (metric, factor, rounded) in HEADLINE.items():
        values = _logged(entries, metric)
        if values:
            found[key] = rounded(statistics.fmean(values) * factor)
    key, metric, rounded = SPREAD
    spread = _logged(entries, metric)
    if len(spread) > 1:
        found[key] = rounded(statistics.stdev(spread))
    return found | {"run_ids": [entry["run_id"] for entry in entries]}


def _logged(entries: Iterable[dict[str, Any]], metric: str) -> list[float]:
    """The runs' finite values of ``metric`` (a number DVC shows must be one JSON can hold)."""
    values = (entry.get(metric) for entry in entries)
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def write_metrics_dir(folder: str | Path, files: dict[str, dict[str, Any]]) -> Path:
    """Each of ``files`` as ``<folder>/<name>.json`` (a ``/`` in a name makes a sub-folder), the folder replaced whole
    and at once: DVC and the comparison never see a half-written folder, or a file no longer written."""
    with atomic_dir(folder) as tmp:
        for name, data in files.items():
            *folders, file = _parts(name)
            path = tmp.joinpath(*folders, f"{file}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(folder)


def _parts(name: str) -> list[str]:
    """A file's name as folders: each part a plain name, so that no file lands outside its stage's folder."""
    parts = name.split("/")
    if any(part in ("", ".", "..") or "\\" in part for part in parts):
        raise ValueError(f"variant {name!r}: cannot be a file name under metrics/ (an empty, '.' or '..' part)")
    return parts


def write_csv(path: str | Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """``columns`` names the header even when there are no rows (a plot DVC expects must exist)."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)
