"""Failures that come from outside the project, in one line each: a tracking server that does not answer
or refuses, a store that is corrupt or locked, a folder that cannot be written.

Such a failure is not a bug to report but a fault to fix where it happened, so the user gets what failed,
where, and what to do, instead of a traceback from MLflow, SQLAlchemy or the file system. Anything not
recognised here keeps its traceback: that one is a bug. :func:`pipeline.cli.cli_entry` asks here.
"""

from __future__ import annotations

import errno
import re
from typing import Iterator, Optional
from urllib.parse import urlsplit

from pipeline.credentials import masked, user_of

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


def tracking_uri(shown: bool = True) -> str:
    """The tracking URI; ``shown``: as an error line may show it, its password masked."""
    import mlflow

    return masked(mlflow.get_tracking_uri()) if shown else mlflow.get_tracking_uri()


def _server(error: BaseException) -> Optional[str]:
    """An MLflow tracking server that does not answer, times out, does not prove who it is, or refuses the
    request (a wrong password, none at all, or a user without the permission)."""
    import requests

    if isinstance(error, requests.exceptions.SSLError):
        return untrusted_server(tracking_uri(), describe_tls(error))
    if isinstance(error, (requests.ConnectionError, requests.Timeout)) or _named(error, "MaxRetryError"):
        timed_out = isinstance(error, requests.Timeout) or "timed out" in str(error)
        return unreachable_server(tracking_uri(), "timed out" if timed_out else "no answer")
    status = refusal_status(error)
    return None if status is None else refused_request(status, _endpoint(str(error)))


def refusal_status(error: BaseException) -> Optional[int]:
    """401 or 403 when the server refused the request (who asked, or what they may do): MLflow's REST errors carry
    an error code, an artifact upload's a ``requests`` response."""
    code = getattr(error, "error_code", "")
    if code in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"):
        return 401
    if code == "PERMISSION_DENIED":
        return 403
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if status in (401, 403) else None


def _endpoint(text: str) -> str:
    """The path of the request MLflow names in a refused request's message, or ''."""
    found = re.search(r"(https?://\S+|/api/\S+)", text)
    return urlsplit(found.group(1).rstrip(".,')\"")).path if found else ""


# What a refused request was for, by its path: what to ask the server's admin for.
_NEEDS = (
    (("registered-models", "model-versions"), "change the model registry: registering champions needs EDIT on the "
     "registered models (or on the workspace, to create them)"),
    (("/runs/", "/experiments/", "logged-models", "mlflow-artifacts"), "write to this experiment: a stage needs "
     "EDIT on it"),
)  # fmt: skip


def refused_request(status: int, endpoint: str = "") -> str:
    """One line for a request the tracking server refused: its status, who asked, what was refused, the fix."""
    uri, user = tracking_uri(), user_of(tracking_uri(shown=False))
    if status == 401 and user is None:
        return (
            f"401: the MLflow tracking server {uri} asks who you are and no credentials were given: set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        )
    if status == 401:
        return (
            f"401: the MLflow tracking server {uri} refused the credentials of user {user} (a wrong password, or no "
            "such user): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    what = next((need for paths, need in _NEEDS if any(p in endpoint for p in paths)), f"call {endpoint or 'it'}")
    return f"403: user {user} may not {what}; ask the admin of the MLflow tracking server {uri}"


def unreachable_server(uri: str, reason: str) -> str:
    return (
        f"the MLflow tracking server {masked(uri)} is unreachable ({reason}): start it, or point MLFLOW_TRACKING_URI "
        "at one that runs (unset it to track into the local sqlite:///mlflow.db)"
    )


def describe_tls(error: BaseException) -> str:
    """Why a TLS handshake failed, in a few words (not the connection pool's paragraph)."""
    found = re.search(r"certificate verify failed: ([^(]+)", str(error))
    return found.group(1).strip() if found else "the TLS handshake failed"


def untrusted_server(uri: str, reason: str) -> str:
    return (
        f"the MLflow tracking server {masked(uri)} did not prove who it is over TLS ({reason}): point "
        "MLFLOW_TRACKING_SERVER_CERT_PATH at the certificate (or CA bundle) that signed its certificate"
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
