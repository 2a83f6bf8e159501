"""Benchmark: what the team's services cost: the pipeline logging to an MLflow server on PostgreSQL against the
embedded SQLite store, and sweep throughput with 1, 2 and 3 workers on PostgreSQL and on SQLite.

**Tracking.** In a fresh clone of this checkout's HEAD, the whole default pipeline (``dvc repro --force``) with
``MLFLOW_TRACKING_URI`` unset (the workspace's ``sqlite:///mlflow.db``) and set to ``mlflow server`` on a
PostgreSQL backend store with proxied artifacts (both on loopback, started here, as tests/services.py starts
them), in turn, ``--repeats`` times; the overhead per run is the difference of the median wall times over the
number of MLflow runs the pipeline makes. ``--stores`` picks the stores, the first the reference; among them the
same server as README's team recipe runs it (the basic-auth app behind TLS, a user with EDIT on the experiment).

**Sweeps.** ``python -m pipeline.sweep finetune --n-trials N`` (params.yaml's space: LoRA's learning rate, rank
and alpha; ``--trials`` trials, a fresh study each time) by 1, 2 and 3 worker processes at once on one study,
on a PostgreSQL database and on an SQLite file; trials per minute is N over the wall time from the workers'
start to the last one's end.

    python -m benchmarks.team_services                       # both parts, 3 repeats
    python -m benchmarks.team_services --skip tracking --repeats 1
    python -m benchmarks.team_services --skip sweeps --stores "server on PostgreSQL" "server with basic-auth and TLS"

Torch threads: the pipeline's own ``trainer.num_threads`` (1) in every process.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
from mlflow.tracking import MlflowClient

from benchmarks.common import show_table
from benchmarks.mlflow_costs import clone, timed
from tests.services import Secured, add_team, mlflow_server, postgres_server, with_credentials


def count_runs(tracking: str, since_ms: int) -> int:
    client = MlflowClient(tracking)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments, f"attributes.start_time >= {since_ms}", max_results=5000))


def tracking_rows(workspace: Path, stores: dict[str, str | None], repeats: int) -> list[dict]:
    rows = []
    for repeat, (store, uri) in itertools.product(range(repeats), stores.items()):
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


@contextlib.contextmanager
def embedded(postgres, folder: Path) -> Iterator[None]:
    yield None  # the workspace's own sqlite:///mlflow.db


@contextlib.contextmanager
def open_server(postgres, folder: Path) -> Iterator[str]:
    with mlflow_server(postgres.create("mlflow"), folder / "artifacts", folder / "server.log") as url:
        yield url


@contextlib.contextmanager
def secured_server(postgres, folder: Path) -> Iterator[str]:
    """README's team recipe: basic-auth behind TLS; the pipeline logs as a user with EDIT on the experiment."""
    folder = folder / "secured"
    folder.mkdir()
    secured = Secured.make(folder, postgres.create("mlflow_auth"), ADMIN_PASSWORD)
    os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(secured.certificate)  # for this process and the stages
    with mlflow_server(postgres.create("mlflow_secured"), folder / "artifacts", folder / "server.log",
                       secured=secured) as url:  # fmt: skip
        add_team(url, ADMIN_PASSWORD, "paradigm-lab", {"alice": ("EDIT", ALICE_PASSWORD)})
        yield with_credentials(url, "alice", ALICE_PASSWORD)


STORES = {
    "SQLite": embedded,
    "server on PostgreSQL": open_server,
    "server with basic-auth and TLS": secured_server,
}
ADMIN_PASSWORD, ALICE_PASSWORD = "admin-password-1234", "alice-password-1234"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6, help="trials per sweep, shared by its workers")
    parser.add_argument("--skip", choices=["tracking", "sweeps"])
    parser.add_argument("--stores", nargs="+", choices=list(STORES), default=list(STORES)[:2],
                        help="the stores the pipeline logs to, in turn; the first is the reference")  # fmt: skip
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paradigm-lab-team-") as tmp, postgres_server() as postgres:
        workspace = clone("HEAD", Path(tmp) / "workspace")
        timed([sys.executable, "-m", "dvc", "repro", "pretrain"], workspace)  # what a finetune sweep reads
        if args.skip != "tracking":
            with contextlib.ExitStack() as servers:
                stores = {store: servers.enter_context(STORES[store](postgres, Path(tmp))) for store in args.stores}
                rows = pd.DataFrame(tracking_rows(workspace, stores, args.repeats))
            medians = rows.groupby("store", sort=False).median(numeric_only=True).drop(columns="repeat")
            show_table(medians.reset_index(), args.csv and args.csv.with_suffix(".tracking.csv"),
                       f"default pipeline, dvc repro --force, medians of {args.repeats}")  # fmt: skip
            local = medians.iloc[0]
            for store, remote in medians.iloc[1:].iterrows():
                extra = remote["seconds"] - local["seconds"]
                print(f"{store}: {extra:+.1f} s on {local['seconds']:.1f} s ({extra / local['seconds']:+.1%}), "
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
