"""One Optuna study shared by any number of worker processes, with exactly the trials asked for.

The worker that creates the study enqueues the requested number of trials; every worker then
takes waiting trials one at a time (each to one worker only) until none is
left. So ``--n-trials 20`` is 20 trials however many workers run, and whenever they start. A
worker that joins an existing study adds no trials: it helps finish the ones enqueued.

A worker killed mid-trial (SIGKILL, out of memory, a preempted machine) leaves its trial RUNNING: its
heartbeat stops, and once it is stale the next worker looking for a trial fails it and takes its retry
(:mod:`pipeline.sweep.storage`). So a worker that finds no waiting trial while others still run waits for
them (at most ``--idle-wait`` seconds, default 10 minutes, and not past its ``--timeout``): each either
finishes or goes stale and is retried here, and the last worker standing finishes the study. A trial still
running after that wait is left to its worker; if that worker dies too, run the command again to finish
the study.
"""

from __future__ import annotations

import os
import time
import warnings
from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator, Optional

import optuna
from filelock import FileLock
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled  # as Study.optimize uses them
from optuna.trial import TrialState

from pipeline.errors import UserError
from pipeline.sweep.storage import sqlite_file

REQUESTED = "trials_requested"  # study user attr: set once every trial is enqueued
IDLE_WAIT_S = 600.0  # default: how long a worker with nothing to take waits for the others' running trials
POLL_S = 1.0  # how often it looks again (a few small queries): it ends within a second of the last trial


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


def next_trial(study: optuna.Study, wait_s: float = 0.0) -> Optional[optuna.Trial]:
    """A waiting trial, now RUNNING and this worker's alone; None when no trial is waiting or running, or
    after ``wait_s`` seconds of only running ones (see the module docstring).

    Each look first fails the stale trials, enqueueing their retries. ``Study.ask`` would create a new
    trial when the queue is empty, one more than asked for, so waiting trials are popped here.
    """
    deadline = time.monotonic() + wait_s
    while True:
        with _one_claim_at_a_time(study):
            with warnings.catch_warnings():  # Optuna's heartbeat is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # what Study.optimize does before each trial
            trial_id = study._pop_waiting_trial_id()  # the storage's compare-and-set from WAITING to RUNNING
        if trial_id is not None:
            return optuna.Trial(study, trial_id)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running or not is_heartbeat_enabled(study._storage) or time.monotonic() >= deadline:
            return None  # (without a heartbeat a dead worker's trial is never retried: nothing to wait for)
        time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.0)))


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> ContextManager[None]:
    """Records ``trial``'s heartbeat from a thread while the block runs (the trial trains)."""
    return get_heartbeat_thread(trial._trial_id, study._storage)


def retry_of(study: optuna.Study, trial: optuna.Trial) -> Optional[int]:
    """The number of the trial that ``trial`` retries (its worker died), or None."""
    return study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")


@contextmanager
def _one_claim_at_a_time(study: optuna.Study) -> Iterator[None]:
    """SQLite ignores the compare-and-set's ``SELECT ... FOR UPDATE``: two workers can both read a trial as
    WAITING and both take it (the second then fails to report it), or both fail a stale trial and enqueue
    two retries. A lock file beside the database makes these one worker's at a time; the other storages
    lock the row themselves (the journal: its log's order decides)."""
    database = sqlite_file(study._storage)
    if database is None:
        yield
        return
    with FileLock(database + ".claim.lock"):
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
