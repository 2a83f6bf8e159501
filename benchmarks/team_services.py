"""Benchmark: what the team's services cost: the pipeline logging to an MLflow server on PostgreSQL against the
embedded SQLite store, and sweep throughput with 1, 2 and 3 workers on PostgreSQL and on SQLite.

**Tracking.** In a fresh clone of this checkout's HEAD, the whole default pipeline (``dvc repro --force``) with
``MLFLOW_TRACKING_URI`` unset (the workspace's ``sqlite:///mlflow.db``) and set to ``mlflow server`` on a
PostgreSQL backend store with proxied artifacts (both on loopback, started here, as tests/services.py starts
them), in turn, ``--repeats`` times; the overhead per run is the difference of the median wall times over the
number of MLflow runs the pipeline makes.

**Sweeps.** ``python -m pipeline.sweep finetune --n-trials N`` (params.yaml's space: LoRA's learning rate, rank
and alpha; ``--trials`` trials, a fresh study each time) by 1, 2 and 3 worker processes at once on one study,
on a PostgreSQL database and on an SQLite file; trials per minute is N over the wall time from the workers'
start to the last one's end.

    python -m benchmarks.team_services                       # both parts, 3 repeats
    python -m benchmarks.team_services --skip tracking --repeats 1

Torch threads: the pipeline's own ``trainer.num_threads`` (1) in every process.
"""

from __future__ import annotations

import argparse
import itertools
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
from benchmarks.mlflow_costs import clone, timed
from tests.services import mlflow_server, postgres_server


def count_runs(tracking: str, since_ms: int) -> int:
    client = MlflowClient(tracking)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments, f"attributes.start_time >= {since_ms}", max_results=5000))


def tracking_rows(workspace: Path, server: str, repeats: int) -> list[dict]:
    rows = []
    for repeat, (store, uri) in itertools.product(range(repeats), (("SQLite", None), ("server on PostgreSQL", server))):
        since = int(time.time() * 1000)
        seconds = timed([sys.executable, "-m", "dvc", "repro", "--force"], workspace, uri)
        runs = count_runs(uri or f"sqlite:///{workspace / 'mlflow.db'}", since)
        rows.append({"store": store, "repeat": repeat, "seconds": seconds, "runs": runs})
        print(rows[-1], flush=True)
    return rows


def sweep_rows(workspace: Path, postgres, trials: int, repeats: int, scratch: Path) -> list[dict]:
    rows = []
    for repeat, workers, store in itertools.product(range(repeats), (1, 2, 3), ("SQLite", "PostgreSQL")):
        study = f"bench_{repeat}_{workers}_{store.lower()}"
        url = postgres.create(study) if store == "PostgreSQL" else f"sqlite:///{scratch / study}.db"
        command = [sys.executable, "-m", "pipeline.sweep", "finetune", "--n-trials", str(trials), "--study", study]
        env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'sweeps-mlflow.db'}"}
        MlflowClient(env["MLFLOW_TRACKING_URI"]).search_experiments()  # the store exists before workers race
        started = time.perf_counter()
        procs = [
            subprocess.Popen([*command, "--storage", url], cwd=workspace, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            for _ in range(workers)
        ]  # fmt: skip
        if any(proc.wait() != 0 for proc in procs):
            raise SystemExit(f"a sweep worker failed: {command} --storage {url}")
        seconds = time.perf_counter() - started
        rows.append({"store": store, "workers": workers, "repeat": repeat, "trials_per_min": 60 * trials / seconds})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6, help="trials per sweep, shared by its workers")
    parser.add_argument("--skip", choices=["tracking", "sweeps"])
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-team-") as tmp, postgres_server() as postgres:
        workspace = clone("HEAD", Path(tmp) / "workspace")
        timed([sys.executable, "-m", "dvc", "repro", "pretrain"], workspace)  # what a finetune sweep reads
        if args.skip != "tracking":
            with mlflow_server(postgres.create("mlflow"), Path(tmp) / "artifacts", Path(tmp) / "server.log") as url:
                rows = pd.DataFrame(tracking_rows(workspace, url, args.repeats))
            medians = rows.groupby("store", sort=False).median(numeric_only=True).drop(columns="repeat")
            show_table(medians.reset_index(), args.csv and args.csv.with_suffix(".tracking.csv"),
                       f"default pipeline, dvc repro --force, medians of {args.repeats}")  # fmt: skip
            local, remote = medians.loc["SQLite"], medians.loc["server on PostgreSQL"]
            extra = remote["seconds"] - local["seconds"]
            print(f"server: {extra:+.1f} s on {local['seconds']:.1f} s ({extra / local['seconds']:+.1%}), "
                  f"{extra / remote['runs']:+.2f} s per run ({remote['runs']:.0f} runs)")  # fmt: skip
        if args.skip != "sweeps":
            rows = pd.DataFrame(sweep_rows(workspace, postgres, args.trials, args.repeats, Path(tmp)))
            table = rows.pivot_table(
                index="workers", columns="store", values="trials_per_min", aggfunc=statistics.median
            )
            show_table(table.reset_index(), args.csv and args.csv.with_suffix(".sweeps.csv"),
                       f"trials per minute, {args.trials} trials a sweep, medians of {args.repeats}")  # fmt: skip


if __name__ == "__main__":
    main()
