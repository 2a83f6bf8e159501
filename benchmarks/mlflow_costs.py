"""Benchmark: what MLflow-native results cost the default pipeline: an MLflow Model per run, system metrics,
the registry.

In a fresh clone of this checkout's HEAD, run with this interpreter (its ``dvc``, its packages), it runs
the whole default pipeline (``dvc repro --force``) ``--repeats`` times with ``tracking.system_metrics``
off and on in turn (and, with ``--before``, at an earlier commit in a clone of its own, in turn with
them), and reports per setting the median wall time and, from the MLflow store, what exporting and
logging each run's MLflow Model took (``time/mlflow_model_seconds``: per run, and summed over the
pipeline's runs). Then the compare stage alone, with ``tracking.register`` off and on in turn (the
champions already registered: the usual re-run), medians of ``--repeats``. Torch threads: the
pipeline's own ``trainer.num_threads`` (1).

    python -m benchmarks.mlflow_costs --repeats 2 --before 834c57e
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from benchmarks.common import show_table
from pipeline.config.edit import apply_to_params
from pipeline.tracking.mlflow_model import MODEL_LOGGING_METRIC

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], workspace: Path, tracking: str | None = None) -> float:
    """Seconds ``command`` takes in ``workspace``, logging to ``tracking`` (None: the workspace's own
    sqlite:///mlflow.db, whatever MLFLOW_TRACKING_URI this process has)."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if tracking:
        env["MLFLOW_TRACKING_URI"] = tracking
    started = time.perf_counter()
    subprocess.run(command, cwd=workspace, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def model_logging_seconds(workspace: Path, since_ms: int) -> list[float]:
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"attributes.start_time >= {since_ms}", max_results=1000)
    return [run.data.metrics[MODEL_LOGGING_METRIC] for run in runs if MODEL_LOGGING_METRIC in run.data.metrics]


def clone(commit: str, folder: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
    subprocess.run(["git", "checkout", "--quiet", commit], cwd=folder, check=True)
    return folder


def pipeline_row(workspace: Path, label: str, repeat: int) -> dict:
    since = int(time.time() * 1000)
    wall = timed([sys.executable, "-m", "dvc", "repro", "--force"], workspace)
    logging = model_logging_seconds(workspace, since)  # none at a commit from before the models
    row = {"what": "pipeline", "code": label, "repeat": repeat, "seconds": wall, "runs with a model": len(logging),
           "model logging, total s": sum(logging),
           "model logging, median s": statistics.median(logging) if logging else 0.0}  # fmt: skip
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before", help="also run the pipeline at this commit (before MLflow Models), in turn")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-costs-") as tmp:
        after = clone("HEAD", Path(tmp) / "after")
        before = clone(args.before, Path(tmp) / "before") if args.before else None
        for repeat in range(args.repeats):
            if before is not None:
                rows.append(pipeline_row(before, f"{args.before} (before)", repeat))
            for monitored in (False, True):
                apply_to_params(after / "params.yaml", {"tracking.system_metrics": monitored})
                label = f"HEAD, system_metrics {'on' if monitored else 'off'}"
                rows.append(pipeline_row(after, label, repeat))
        for repeat in range(args.repeats):
            for register in (False, True):
                apply_to_params(after / "params.yaml", {"tracking.register": register})
                wall = timed([sys.executable, "-m", "stages.compare"], after)
                rows.append(
                    {"what": "compare stage", "code": f"register {register}", "repeat": repeat, "seconds": wall}
                )
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    medians = table.groupby(["what", "code"], sort=False).median(numeric_only=True).drop(columns="repeat")
    show_table(medians.reset_index(), args.csv, f"medians of {args.repeats} (torch threads: the pipeline's, 1)")
    pipelines = medians.loc["pipeline", "seconds"]
    off, on = pipelines["HEAD, system_metrics off"], pipelines["HEAD, system_metrics on"]
    print(f"system metrics: {on - off:+.1f} s on {off:.1f} s ({(on - off) / off:+.1%})")
    if before is not None:
        was = pipelines[f"{args.before} (before)"]
        print(f"HEAD against {args.before}: {off - was:+.1f} s on {was:.1f} s ({(off - was) / was:+.1%})")


if __name__ == "__main__":
    main()
