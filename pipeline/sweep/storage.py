"""Where a sweep's study lives: ``--storage`` checked before any work, and the heartbeat that retries the
trial of a killed worker.

Storage: an Optuna RDB URL (``sqlite:///optuna.db``, the default; ``postgresql://...``, ``mysql://...``) or
``journal:PATH`` for Optuna's journal file, which several processes (or machines on a shared file system) can
append to safely. :func:`check_storage` makes each mistake (not a storage URL, a driver not installed, a
folder that is missing, is a file or cannot be written) one line naming ``--storage``, its value and the fix,
before the study, the database or any MLflow run is made.

Heartbeat: while a trial trains, a thread beside it records the trial's heartbeat every ``--heartbeat``
seconds (default 30). A RUNNING trial with no heartbeat for the grace period (3 heartbeats: one or two may
come late from a busy database or a long step without the worker being dead) lost its worker (SIGKILL, the
OOM killer, a preempted machine). The next worker looking for a trial fails it and enqueues a retry with the
same params, WAITING, which a worker takes like any other; a trial is retried at most twice (one that kills
its worker every time, e.g. out of memory, is left FAILED). 30 s costs one small write per running trial
every 30 s, and a killed worker's trial is stale 60 to 90 s after the kill, retried as soon as a worker
next looks for a trial (an idle one looks every second): short next to trials of minutes. The tests use 1 s.

Optuna (5.0) has a heartbeat for RDB storages only; :class:`JournalWithHeartbeat` adds one to the journal,
kept as a trial system attribute in each worker's clock: workers on several machines need clocks in sync
to well under the grace period (NTP is).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # Optuna's heartbeat interface (its own module is private)
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from pipeline.credentials import masked
from pipeline.errors import UserError

DEFAULT_STORAGE = "sqlite:///optuna.db"
JOURNAL = "journal:"
ALLOWED = "use an RDB URL (sqlite:///optuna.db, postgresql://..., mysql://...) or journal:PATH"
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}

HEARTBEAT_S = 30  # default seconds between a running trial's heartbeats
GRACE_HEARTBEATS = 3  # heartbeats missed before its trial is failed and retried
MAX_RETRIES = 2  # retries of one trial whose worker died


def check_storage(url: Optional[str]) -> None:
    """Raises UserError when ``url`` (None: the default) cannot be a study's storage; opens nothing."""
    url = DEFAULT_STORAGE if url is None else url
    if url.startswith(JOURNAL):
        _check_file(url, url[len(JOURNAL) :], "journal file")
        return
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()  # NoSuchModuleError (an ArgumentError) for an unknown scheme
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise UserError(f"--storage {url!r}: not an Optuna storage; {ALLOWED}") from None
    shown = masked(url)
    try:
        dialect.import_dbapi()
    except ImportError as err:
        if err.name is None:  # the driver is there but fails to load (a missing system library)
            raise UserError(f"--storage {shown!r}: its database driver does not load: {err}") from None
        package = DRIVER_PACKAGES.get(err.name, err.name)
        raise UserError(
            f"--storage {shown!r}: its database driver {err.name} is not installed; install it "
            f"(pip install '{package}') or use sqlite:///optuna.db or journal:PATH"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_file(url, parsed.database, "SQLite database")


def storage_for(url: Optional[str], heartbeat_s: int = HEARTBEAT_S, attempts: int = 5) -> BaseStorage:
    """The storage at ``url`` (passed by :func:`check_storage`), with the heartbeat and the retry of a trial whose
    worker died."""
    url = DEFAULT_STORAGE if url is None else url
    with warnings.catch_warnings():  # Optuna's heartbeat is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
        grace_s = GRACE_HEARTBEATS * heartbeat_s
        if url.startswith(JOURNAL):
            return JournalWithHeartbeat(JournalFileBackend(url[len(JOURNAL) :]), heartbeat_s, grace_s, retry)
        sqlite = make_url(url).get_backend_name() == "sqlite"
        for attempt in range(attempts):
            try:  # SQLite: wait for a busy database instead of failing at once
                return RDBStorage(
                    url,
                    engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=retry,
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
                if attempt == attempts - 1:  # workers starting together on a new database race to create its
                    raise  # schema: the loser finds it made on its next try
                time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def sqlite_file(storage: BaseStorage) -> Optional[str]:
    """The database file of a SQLite storage, else None."""
    storage = getattr(storage, "_backend", storage)  # optuna wraps an RDB storage in a cache
    if not isinstance(storage, RDBStorage):
        return None
    url = make_url(storage.url)
    return url.database if url.get_backend_name() == "sqlite" and url.database != ":memory:" else None


class JournalWithHeartbeat(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat Optuna gives RDB storages only.

    The last heartbeat is a trial system attribute (epoch seconds). A retry copies its stale original's
    attributes, heartbeat included, so a trial's start counts as a heartbeat too.
    """

    HEARTBEAT_ATTR = "sweep:heartbeat"

    def __init__(
        self,
        backend: JournalFileBackend,
        interval_s: int,
        grace_s: int,
        on_stale: Callable[[optuna.Study, FrozenTrial], None],
    ):
        super().__init__(backend)
        self._interval_s, self._grace_s, self._on_stale = interval_s, grace_s, on_stale

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, self.HEARTBEAT_ATTR, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed as stale by another worker while this one was stalled: its retry runs elsewhere

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [
            t._trial_id
            for t in running
            if now - max(t.system_attrs.get(self.HEARTBEAT_ATTR, 0.0), t.datetime_start.timestamp()) > self._grace_s
        ]

    def get_heartbeat_interval(self) -> int:
        return self._interval_s

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None]:
        return self._on_stale


def _check_file(url: str, path: str, what: str) -> None:
    """The file may exist or not; its folder must exist and be writable (Optuna adds lock files beside it)."""
    if not path:
        raise UserError(f"--storage {url!r}: no {what} path; {ALLOWED}")
    file = Path(os.path.abspath(path))
    if file.is_dir():
        raise UserError(f"--storage {url!r}: {file} is a folder; give the path of a {what} in it")
    for folder in file.parents:
        if folder.exists():  # the nearest existing folder above the file, or a file in its way
            break
    if not folder.is_dir():
        raise UserError(f"--storage {url!r}: {folder} is a file, not a folder; choose a {what} path in a folder")
    if folder != file.parent:
        raise UserError(
            f"--storage {url!r}: folder {file.parent} does not exist; create it (mkdir -p {file.parent}) "
            "or choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (file.exists() and not os.access(file, os.R_OK | os.W_OK)):
        raise UserError(f"--storage {url!r}: cannot write the {what} {file} (permission denied); choose another path")
