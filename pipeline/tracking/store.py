"""Open the MLflow store once per process, before any work: fail fast, and close what dead processes left open.

* A tracking server that does not answer fails the stage within seconds, not after MLflow's default of
  minutes of retries: unless the user set them, the HTTP retry, back-off and timeout settings are lowered
  (:data:`FAIL_FAST`) and the server is asked once before anything trains.
* Every run carries its owner (:func:`owner_tags`: host, pid, the process's start time). A run still RUNNING
  whose owner on this host no longer exists was killed (``kill -9``, out of memory, a power cut): it is marked
  KILLED, so nothing reads it as in progress. Runs of another host are left to that host.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import mlflow
import psutil
from mlflow.tracking import MlflowClient

from pipeline.config.schema import TrackingConfig
from pipeline.credentials import masked, user_of
from pipeline.errors import OutsideFault
from pipeline.failures import describe, describe_tls, unreachable_server, untrusted_server
from pipeline.ranks import is_global_zero

# MLflow's defaults retry a dead server for minutes (7 retries, back-off factor 2, 120 s timeout).
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
PROBE_TIMEOUT_S = 5
# MLflow announces creating and upgrading a SQLite store's tables on stderr, on every new store: noise before
# a stage's own lines (and before a one-line error).
QUIET_LOGGERS = ("mlflow.store.db.utils",)
REMOTE_SCHEMES = ("http", "https", "databricks")
OWNER_TAGS = ("owner_host", "owner_pid", "owner_started")
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
QUIET_LINKS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
# MLflow's basic-auth app (mlflow server --app-name basic-auth): a user's permission on a resource, a user
PERMISSION_ENDPOINT = "/api/3.0/mlflow/users/permissions/get"
USER_ENDPOINT = "/api/2.0/mlflow/users/get"
WRITE_PERMISSIONS = ("EDIT", "MANAGE")


def resolve_tracking_uri(cfg: TrackingConfig) -> str:
    """``MLFLOW_TRACKING_URI`` if set (a team's server), else ``tracking.tracking_uri``; a throwaway store for a
    distributed run's later processes."""
    if not is_global_zero():
        return f"sqlite:///{_rank_scratch() / 'mlflow.db'}"
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking_uri


@functools.cache
def _rank_scratch() -> Path:
    """The throwaway store's folder for a distributed run's later processes, removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="paradigm-lab-rank-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def open_store(cfg: TrackingConfig) -> str:
    """The tracking URI, checked to answer, with runs of dead processes on this host marked KILLED."""
    uri = resolve_tracking_uri(cfg)
    for name, value in FAIL_FAST.items():
        os.environ.setdefault(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if masked(uri) != uri:  # MLflow prints each run's link, built from the URI: with its password
        os.environ[QUIET_LINKS] = "true"
    mlflow.set_tracking_uri(uri)  # first: an error line about the store names it
    _checked(uri, cfg.experiment)
    return uri


@functools.cache
def _checked(uri: str, experiment: str) -> None:
    _probe_server(uri)
    try:
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            _check_may_write(uri, found.experiment_id, experiment)
        closed = close_orphaned_runs(client, found.experiment_id) if found is not None else []
        if closed:
            print(f"tracking: marked KILLED {len(closed)} run(s) whose process ended while RUNNING", file=sys.stderr)
    except OutsideFault:
        raise
    except Exception as err:
        line = describe(err)
        if line is None:
            raise
        shown = masked(uri)
        raise OutsideFault(line if shown in line else f"the MLflow store {shown}: {line}") from None


def _probe_server(uri: str) -> None:
    """One quick request to a tracking server, without retries: any answer will do, silence fails; a server
    whose TLS certificate is not trusted fails too (MLflow's MLFLOW_TRACKING_SERVER_CERT_PATH and
    MLFLOW_TRACKING_INSECURE_TLS apply, as to every later request)."""
    if uri.split(":", 1)[0] not in ("http", "https"):
        return
    import requests
    from mlflow.utils.credentials import get_default_host_creds

    creds = get_default_host_creds(uri)
    verify = creds.server_cert_path or not creds.ignore_tls_verification
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S, verify=verify)
    except requests.exceptions.SSLError as err:
        raise OutsideFault(untrusted_server(uri, describe_tls(err))) from None
    except requests.RequestException as err:
        reason = "timed out" if isinstance(err, requests.Timeout) else "no answer"
        raise OutsideFault(unreachable_server(uri, reason)) from None


def _check_may_write(uri: str, experiment_id: str, experiment: str) -> None:
    """On a server with MLflow's basic-auth app, the user's permission on the experiment, asked before any work:
    a user who may only read fails the stage now, in one line, not after its training. A server without
    authentication (the question is unknown to it), and a token instead of a user name, are not asked."""
    user = user_of(uri)
    if user is None or urlsplit(uri).scheme not in ("http", "https"):
        return
    question = {"username": user, "resource_type": "experiment", "resource_id": experiment_id}
    answer = _ask(uri, PERMISSION_ENDPOINT, question)
    if answer is None or answer.get("permission") in WRITE_PERMISSIONS:
        return
    if (_ask(uri, USER_ENDPOINT, {"username": user}) or {}).get("user", {}).get("is_admin"):
        return  # an admin may write anywhere, whatever the experiment's grants say
    raise OutsideFault(
        f"403: user {user} may not write to experiment {experiment} (its permission there is "
        f"{answer.get('permission')}) on the MLflow tracking server {masked(uri)}; ask the server's admin for EDIT"
    )


def _ask(uri: str, endpoint: str, query: dict[str, str]) -> dict | None:
    """A GET to one of the basic-auth app's endpoints (its own client would import the whole server, seconds of
    start-up); None where the server has no such endpoint."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(get_default_host_creds(uri), endpoint, "GET", params=query, max_retries=0)
    try:
        return verify_rest_response(response, endpoint).json()
    except MlflowException as err:
        if err.get_http_status_code() == 404:
            return None
        raise


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """MLflow draws a progress bar per download (a run's predictions, a model's artifacts as it checks its input
    example): one per run would flood a stage's output."""
    before = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = before


def owner_tags() -> dict[str, str]:
    """Who is running a run: enough to tell later that its process is gone."""
    me = psutil.Process()
    return {"owner_host": socket.gethostname(), "owner_pid": str(me.pid), "owner_started": f"{me.create_time():.2f}"}


def close_orphaned_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose owning process on this host is gone; their ids."""
    host = socket.gethostname().replace("'", "")
    runs = client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.owner_host = '{host}'"
    )
    closed = []
    for run in runs:
        if not _owner_alive(run.data.tags):
            client.set_tag(run.info.run_id, "killed", "its process ended without closing it (found at a later start)")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def _owner_alive(tags: dict[str, str]) -> bool:
    try:
        pid, started = int(tags["owner_pid"]), float(tags["owner_started"])
        return abs(psutil.Process(pid).create_time() - started) < 1.0  # the same process, not a reused pid
    except (KeyError, ValueError, psutil.AccessDenied):
        return True  # not ours to judge, or another user's live process
    except psutil.NoSuchProcess:
        return False
