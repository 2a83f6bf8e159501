"""A password in a URI is shown masked and never linked; a refused or untrusted server is one line that names the
user, never the password. The real server and every channel are in tests/test_dvc_pipeline.py's sentinel test."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

from pipeline.compare.sources import run_url, ui_url
from pipeline.credentials import masked, user_of, without_credentials
from pipeline.failures import FAULT_EXIT, describe
from tests.test_faults import stage_exit, write_params

PASSWORD = "s3cr3t-Pw"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://alice:s3cr3t-Pw@127.0.0.1:5000", "http://alice:***@127.0.0.1:5000"),
        ("https://alice:s3cr3t-Pw@mlflow-host/prefix", "https://alice:***@mlflow-host/prefix"),
        ("postgresql+psycopg://optuna:s3cr3t-Pw@db-host:5432/optuna", "postgresql+psycopg://optuna:***@db-host:5432/optuna"),
        ("mysql://:s3cr3t-Pw@db/optuna", "mysql://:***@db/optuna"),
        ("ssh://git:s3cr3t-Pw:with-colon@host/repo", "ssh://git:***@host/repo"),
        ("postgresql://db-host/optuna?user=o&password=s3cr3t-Pw&sslmode=require",
         "postgresql://db-host/optuna?user=o&password=***&sslmode=require"),
        ("https://bucket.example/file?X-Amz-Signature=s3cr3t-Pw", "https://bucket.example/file?X-Amz-Signature=***"),
        ("error: cannot reach https://alice:s3cr3t-Pw@host:5000 (no answer)",
         "error: cannot reach https://alice:***@host:5000 (no answer)"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("http://127.0.0.1:5000/path@v2", "http://127.0.0.1:5000/path@v2"),
    ],
)  # fmt: skip
def test_a_uris_password_is_masked_wherever_it_stands(uri, shown):
    assert masked(uri) == shown
    assert PASSWORD not in masked(uri)


def test_links_carry_no_credentials_at_all(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    uri = f"https://alice:{PASSWORD}@[::1]:5000/mlflow"
    assert without_credentials(uri) == "https://[::1]:5000/mlflow"
    assert user_of(uri) == "alice" and user_of("https://[::1]:5000") is None
    ui = ui_url(None, f"https://alice:{PASSWORD}@mlflow-host:5000")
    assert run_url(ui, "1", "abc").startswith("https://mlflow-host:5000/#/experiments/1/runs/abc")
    assert ui_url(f"https://bob:{PASSWORD}@ui-host", "sqlite:///mlflow.db") == "https://ui-host"


@pytest.mark.parametrize(
    ("code", "user", "line"),
    [
        (PERMISSION_DENIED, "alice", "403: user alice may not write to this experiment: a stage needs EDIT on it; "
         "ask the admin of the MLflow tracking server https://alice:***@mlflow-host:5000"),
        (UNAUTHENTICATED, "alice", "401: the MLflow tracking server https://alice:***@mlflow-host:5000 refused the "
         "credentials of user alice"),
        (UNAUTHENTICATED, None, "401: the MLflow tracking server https://mlflow-host:5000 asks who you are and no "
         "credentials were given"),
    ],
)  # fmt: skip
def test_a_refused_request_is_one_line_naming_the_user_not_the_password(monkeypatch, code, user, line):
    import mlflow

    uri = f"https://alice:{PASSWORD}@mlflow-host:5000" if user else "https://mlflow-host:5000"
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: uri)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    refused = MlflowException(
        "API request to endpoint /api/2.0/mlflow/runs/create failed with error code 403 != 200. Response body: "
        "'Permission denied'",
        error_code=code,
    )
    assert describe(refused).startswith(line)


def test_a_stage_whose_store_uri_holds_a_password_never_prints_it(tmp_path, monkeypatch, capsys):
    """An unreachable server named with a password in its URI: the one line names the server, masked."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{PASSWORD}@127.0.0.1:1")
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(name, "1")
    code, last = stage_exit(capsys)
    assert code == FAULT_EXIT
    assert last.startswith("error: the MLflow tracking server http://alice:***@127.0.0.1:1 is unreachable"), last
