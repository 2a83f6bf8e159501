"""Files a stage writes for DVC: ``metrics/<stage>.json`` and the CSVs behind ``dvc plots``.

``metrics/<stage>.json`` holds, per run the stage made, its MLflow run id and headline
metrics, so the comparison reads exactly the runs behind the current outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd

from pipeline.io import atomic_path, write_json
from pipeline.paths import METRICS_DIR, metrics_file


def write_stage_metrics(
    stage: str, runs: dict[str, dict[str, Any]], metrics_dir: Path = METRICS_DIR, skipped: Optional[str] = None
) -> Path:
    """``runs`` maps a variant name to ``{"run_id": ..., <metric>: value, ...}``; a stage with nothing to run on
    this data writes no runs and ``skipped``, why (the comparison says it)."""
    path = metrics_file(stage, metrics_dir)
    write_json(path, {"stage": stage, "runs": runs, **({"skipped": skipped} if skipped else {})})
    return path


def write_csv(path: str | Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """``columns`` names the header even when there are no rows (a plot DVC expects must exist)."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)
