"""Failures that come from outside the project, in one line each: a tracking server that does not answer
or refuses, a store that is corrupt or locked, a folder that cannot be written.

Such a failure is not a bug to report but a fault to fix where it happened, so the user gets what failed,
where, and what to do, instead of a traceback from MLflow, SQLAlchemy or the file system. Anything not
recognised here keeps its traceback: that one is a bug. :func:`pipeline.stage.stage_entry` asks here.
"""

from __future__ import annotations

import errno
from typing import Iterator, Optional

# Exit codes: 2 for the user's input (pipeline.errors.UserError), 3 for a fault around the project.
USER_ERROR_EXIT = 2
FAULT_EXIT = 3
INTERRUPTED_EXIT = 130

_FILE_SYSTEM_ERRNOS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a parent of it is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
}


def describe(error: BaseException) -> Optional[str]:
    """One line naming a known outside failure and its fix, or None (an unknown exception: a bug)."""
    for cause in _chain(error):
        for explain in (_server, _database, _file_system):
            line = explain(cause)
            if line:
                return line
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def tracking_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def _server(error: BaseException) -> Optional[str]:
    """An MLflow tracking server that does not answer, times out or refuses the request."""
    import requests

    if isinstance(error, (requests.ConnectionError, requests.Timeout)) or _named(error, "MaxRetryError"):
        timed_out = isinstance(error, requests.Timeout) or "timed out" in str(error)
        return unreachable_server(tracking_uri(), "timed out" if timed_out else "no answer")
    code = getattr(error, "error_code", "")
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return (
            f"the MLflow tracking server {tracking_uri()} refused the request ({code}): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) for it"
        )
    return None


def unreachable_server(uri: str, reason: str) -> str:
    return (
        f"the MLflow tracking server {uri} is unreachable ({reason}): start it, or point MLFLOW_TRACKING_URI at "
        "one that runs (unset it to track into the local sqlite:///mlflow.db)"
    )


def _database(error: BaseException) -> Optional[str]:
    """A SQLite or other database (the MLflow store, a sweep's Optuna storage) that is corrupt, locked or
    cannot be opened."""
    if not _named(error, "OperationalError", "DatabaseError"):
        return None
    text = str(error).split("\n")[0]
    where = _database_of(error)
    if "malformed" in text or "not a database" in text:
        return (
            f"{where} is corrupt ({_short(text)}): move it aside (e.g. `mv mlflow.db mlflow.db.broken`) and run "
            "`dvc repro --force` to record the runs again, or restore it from a backup"
        )
    if "locked" in text:
        return f"{where} is locked by another process ({_short(text)}): wait for it to finish, then run again"
    if "unable to open" in text or "readonly" in text:
        return f"{where} cannot be opened or written ({_short(text)}): check that its folder exists and is writable"
    return None


def _file_system(error: BaseException) -> Optional[str]:
    """A file or folder the stage must write (an output, the store, its artifacts) that it cannot."""
    if not isinstance(error, OSError) or error.errno not in _FILE_SYSTEM_ERRNOS:
        return None
    # a copy that fails names its source first and the file it was writing second
    name = error.filename2 or error.filename or "a file the stage writes"
    return f"cannot write {name}: {_FILE_SYSTEM_ERRNOS[error.errno]} ({error.strerror}); fix that path, then run again"


def _database_of(error: BaseException) -> str:
    """Whose database failed, from the code that was using it: Optuna's (a sweep's storage) or MLflow's."""
    frames = []
    trace = error.__traceback__
    while trace is not None:
        frames.append(trace.tb_frame.f_code.co_filename)
        trace = trace.tb_next
    if any("/optuna/" in name for name in frames):
        return "the sweep's Optuna storage"
    if any("/mlflow/" in name for name in frames):
        return f"the MLflow store {tracking_uri()}"
    return "a database the stage uses"


def _named(error: BaseException, *names: str) -> bool:
    return any(cls.__name__ in names for cls in type(error).__mro__)


def _short(text: str, limit: int = 120) -> str:
    text = text.removeprefix("(sqlite3.OperationalError) ").removeprefix("(sqlite3.DatabaseError) ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
