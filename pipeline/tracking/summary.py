"""A short table of the current runs, read from ``metrics/*.json``: what ``make run`` prints at the end.

Run as ``python -m pipeline.tracking.summary``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.tracking.outputs import METRICS_DIR

COLUMNS = {
    "test/acc": "test acc",
    "test/f1_macro": "macro-F1",
    "params/trainable": "trainable params",
    "memory/estimated_train_bytes": "est. train bytes",
    "memory/peak_bytes": "measured peak bytes",
    "time/fit_seconds": "fit s",
}


def runs_table(metrics_dir: Path = METRICS_DIR) -> pd.DataFrame:
    rows = []
    for path in sorted(Path(metrics_dir).glob("*.json")):
        stage = json.loads(path.read_text())
        for variant, metrics in stage.get("runs", {}).items():
            if "test/acc" in metrics:
                rows.append({"stage": stage["stage"], "variant": variant} | {COLUMNS[k]: metrics.get(k) for k in COLUMNS}
                            | {"mlflow run": metrics["run_id"]})
    return pd.DataFrame(rows)


def main() -> None:
    table = runs_table()
    print("no trained runs in metrics/ yet" if table.empty else table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
