"""Benchmark: what MLflow's authentication costs each request to the team's tracking server.

Three servers in turn, each ``mlflow server`` on PostgreSQL with proxied artifacts on loopback, started as
tests/services.py starts them (2 uvicorn workers): open over HTTP (README's recipe before authentication), the
basic-auth app behind TLS without its credential cache, and the same with ``auth_cache_ttl_seconds = 60``
(README's recipe), set up as README's recipe does (a user with READ on the experiment). On each, ``--requests``
calls of ``experiments/get`` (the smallest authenticated read) on one kept-alive connection, as MLflow's client
makes them, ``--repeats`` times; the table gives the median and the 90th percentile per request, over every call
of every repeat.

    python -m benchmarks.team_auth --csv benchmark-team-auth.csv

The basic-auth app checks a password by PBKDF2 on every request it has not cached: that is the cost the cache
removes. No torch work runs here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import requests

from benchmarks.common import show_table
from tests.services import Secured, add_team, mlflow_server, postgres_server

USER, PASSWORD = "alice", "alice-password-1234"
ADMIN_PASSWORD = "admin-password-1234"


def timings(url: str, experiment: str, auth, verify, requests_n: int) -> list[float]:
    """Seconds per ``experiments/get`` call on one session (after one call to open the connection)."""
    with requests.Session() as session:
        address = f"{url}/api/2.0/mlflow/experiments/get?experiment_id={experiment}"
        session.get(address, auth=auth, verify=verify, timeout=60).raise_for_status()
        taken = []
        for _ in range(requests_n):
            started = time.perf_counter()
            session.get(address, auth=auth, verify=verify, timeout=60).raise_for_status()
            taken.append(time.perf_counter() - started)
    return taken


def server_rows(postgres, folder: Path, name: str, cache: bool, requests_n: int, repeats: int) -> dict:
    database = postgres.create(f"bench_{folder.name}")
    secured, auth, verify = None, None, True
    if name != "open":
        secured = Secured.make(folder, postgres.create(f"bench_{folder.name}_auth"), ADMIN_PASSWORD)
        if not cache:  # the config as MLflow ships it: every request checks the password
            text = secured.auth_config.read_text().replace("auth_cache_ttl_seconds = 60\n", "")
            secured.auth_config.write_text(text)
        auth, verify = (USER, PASSWORD), str(secured.certificate)
    with mlflow_server(database, folder / "artifacts", folder / "server.log", secured=secured) as url:
        experiment = "0"  # the Default experiment, open
        if secured is not None:
            os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(secured.certificate)  # the set-up's client trusts it
            experiment = add_team(url, ADMIN_PASSWORD, "paradigm-lab", {USER: ("READ", PASSWORD)})
        taken = [t for _ in range(repeats) for t in timings(url, experiment, auth, verify, requests_n)]
    row = {
        "server": name,
        "requests": len(taken),
        "median ms": round(1000 * statistics.median(taken), 1),
        "p90 ms": round(1000 * statistics.quantiles(taken, n=10)[-1], 1),
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    servers = [("open", False), ("basic-auth, TLS, no cache", False), ("basic-auth, TLS, cache 60 s", True)]
    with postgres_server() as postgres, tempfile.TemporaryDirectory(prefix="paradigm-lab-auth-") as tmp:
        rows = []
        for index, (name, cache) in enumerate(servers):
            folder = Path(tmp) / str(index)
            folder.mkdir()
            rows.append(server_rows(postgres, folder, name, cache, args.requests, args.repeats))
    table = pd.DataFrame(rows)
    show_table(table, args.csv, f"Per request to the tracking server ({args.repeats} x {args.requests} calls)")


if __name__ == "__main__":
    main()
