"""One Optuna study shared by any number of worker processes, with exactly the trials asked for.

The worker that creates the study enqueues the requested number of trials; every worker then
takes waiting trials one at a time (each to one worker only) until none is
left. So ``--n-trials 20`` is 20 trials however many workers run, and whenever they start. A
worker that joins an existing study adds no trials: it helps finish the ones enqueued.

Storage: an Optuna RDB URL (``sqlite:///optuna.db``, the default; ``postgresql://...``,
``mysql://...``) or ``journal:PATH`` for Optuna's journal file, which several processes (or
machines on a shared file system) can append to safely.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import optuna
import sqlalchemy.exc
from filelock import FileLock
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from pipeline.errors import UserError

DEFAULT_STORAGE = "sqlite:///optuna.db"
JOURNAL = "journal:"
SQLITE_FILE = "sqlite:///"  # followed by the database's path
REQUESTED = "trials_requested"  # study user attr: set once every trial is enqueued


def storage_for(url: Optional[str], attempts: int = 5) -> BaseStorage:
    url = url or DEFAULT_STORAGE
    if url.startswith(JOURNAL):
        return JournalStorage(JournalFileBackend(url[len(JOURNAL) :]))
    sqlite = url.startswith("sqlite")
    for attempt in range(attempts):
        try:  # SQLite: wait for a busy database instead of failing at once
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == attempts - 1:  # workers starting together on a new database race to create its
                raise  # schema: the loser finds it made on its next try
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def open_study(
    name: str,
    storage: BaseStorage,
    direction: str,
    n_trials: int,
    seed: int,
    on_create: Callable[[optuna.Study], None] = lambda study: None,
    wait_s: float = 120.0,
) -> optuna.Study:
    """The study. The worker that creates it calls ``on_create(study)`` (e.g. to record the MLflow
    parent run on it), then enqueues the trials; workers that join wait until both are done."""
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction=direction,
            load_if_exists=False,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        # another worker's draws must differ from the creator's, or both would try the same params
        study = optuna.load_study(
            study_name=name, storage=storage, pruner=pruner, sampler=optuna.samplers.TPESampler(seed=seed + os.getpid())
        )
        if study.direction.name.lower() != direction:
            raise UserError(
                f"study '{name}' exists and maximises/minimises otherwise ({study.direction.name.lower()}, "
                f"not {direction}); use another --study"
            ) from None
        _wait_for_enqueued(study, wait_s)
        return study
    on_create(study)
    for _ in range(n_trials):
        study.enqueue_trial({})  # empty: every param is drawn by the sampler when a worker takes the trial
    study.set_user_attr(REQUESTED, n_trials)
    return study


def next_trial(study: optuna.Study) -> Optional[optuna.Trial]:
    """A waiting trial, now RUNNING and this worker's alone; None when every trial is taken.

    ``Study.ask`` would create a new trial when the queue is empty, one more than asked for.
    """
    with _one_claim_at_a_time(study):
        trial_id = study._pop_waiting_trial_id()  # the storage's compare-and-set from WAITING to RUNNING
    return None if trial_id is None else optuna.Trial(study, trial_id)


@contextmanager
def _one_claim_at_a_time(study: optuna.Study) -> Iterator[None]:
    """SQLite ignores the compare-and-set's ``SELECT ... FOR UPDATE``: two workers can both read a trial as
    WAITING and both take it (the second then fails to report it). A lock file beside the database makes
    the claim one worker's at a time; the other storages lock the row themselves."""
    storage = getattr(study._storage, "_backend", study._storage)  # optuna wraps an RDB storage in a cache
    url = getattr(storage, "url", "")
    if not url.startswith(SQLITE_FILE):
        yield
        return
    with FileLock(url[len(SQLITE_FILE) :] + ".claim.lock"):
        yield


def _wait_for_enqueued(study: optuna.Study, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while REQUESTED not in study.user_attrs:
        if time.monotonic() > deadline:
            raise UserError(
                f"study '{study.study_name}' exists but its trials were never enqueued (its creator stopped?); "
                "use another --study"
            )
        time.sleep(0.5)
