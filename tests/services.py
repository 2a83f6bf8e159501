"""Real services for the team-setup tests: a PostgreSQL server and an MLflow tracking server on loopback.

Each starts in a temporary folder on a free port and is stopped (then killed) on the way out, with whatever
it wrote. PostgreSQL is the system's (Debian's ``postgresql`` package: ``.ci/run`` installs it where it is
missing); it refuses to run as root, so as root it runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

START_SECONDS = 60
INSTALL = "install PostgreSQL's server (apt-get install postgresql; .ci/run does)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin(command: str) -> str:
    """A PostgreSQL server command (initdb, pg_ctl): on PATH, or in Debian's versioned folder."""
    found = shutil.which(command) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{command}"))[-1:]), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {command} is not on this machine: {INSTALL}")
    return found


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass(frozen=True)
class Postgres:
    port: int

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        self._sql(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def drop(self, database: str) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def dump(self, database: str) -> bytes:
        """Everything the database holds, as pg_dump writes it (schema and rows)."""
        command = [postgres_bin("pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database]
        return subprocess.run(command, check=True, capture_output=True, timeout=120).stdout

    def _sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres", "postgresql"), autocommit=True) as connection:
            connection.execute(statement)


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL server in a folder of its own (the ``postgres`` user must reach it, so not under pytest's
    private temporary folders), trusting connections from loopback only; removed with its data afterwards."""
    root = Path(tempfile.mkdtemp(prefix="paradigm-lab-postgres-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "pgdata", free_port()
    pg_ctl = postgres_bin("pg_ctl")
    try:
        subprocess.run(
            _as_server_user([postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start"]),
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
        )
        yield Postgres(port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# MLflow's job runner (eight processes, about 2 GB) serves GenAI features (trace scoring and archival) that no
# stage uses: off, as README's team-server recipe has it.
NO_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextmanager
def mlflow_server(
    backend_store: str, artifacts: Path, log: Path, job_runner: bool = False, secured: Optional[Secured] = None
) -> Iterator[str]:
    """``mlflow server`` on ``backend_store`` proxying artifacts to the folder ``artifacts``; its URL.
    ``job_runner``: with MLflow's job runner, as ``mlflow server`` starts by default. ``secured``: with MLflow's
    basic-auth app behind TLS, as README's team recipe runs it."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_store,
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    env = os.environ if job_runner else os.environ | NO_JOB_RUNNER
    scheme, probe = "http", None
    if secured is not None:
        command += ["--app-name", "basic-auth", "--uvicorn-opts", secured.uvicorn_opts]
        env, scheme, probe = env | secured.server_env, "https", secured.certificate
    with processes() as started, open(log, "w") as out:
        started.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        url = f"{scheme}://127.0.0.1:{port}"
        wait_for(f"{url}/health", started[0], 2 * START_SECONDS, log, probe)  # it creates its tables first
        yield url


@dataclass(frozen=True)
class Secured:
    """What README's team recipe adds to ``mlflow server``: a self-signed certificate for TLS, and the basic-auth
    app's config (its users and permissions in a database of their own; nobody may do anything until granted)."""

    certificate: Path
    key: Path
    auth_config: Path
    admin_password: str

    @classmethod
    def make(cls, folder: Path, auth_database: str, admin_password: str) -> Secured:
        """The certificate (for 127.0.0.1 and localhost) and the auth config, written into ``folder``."""
        certificate, key = folder / "server.crt", folder / "server.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(certificate)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        config = folder / "auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = {auth_database}\n"
            "admin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = 60\n"
        )
        return cls(certificate, key, config, admin_password)

    @property
    def uvicorn_opts(self) -> str:
        return f"--ssl-keyfile {self.key} --ssl-certfile {self.certificate}"

    @property
    def server_env(self) -> dict[str, str]:
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,  # the admin's password from the first start on
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),  # the UI's CSRF protection
        }


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user``'s credentials in it (MLflow and ``requests`` accept them there)."""
    return url.replace("://", f"://{user}:{password}@", 1)


def add_team(url: str, admin_password: str, experiment: str, team: dict[str, tuple[str, str]]) -> str:
    """As README's recipe, as the admin: the experiment, then each user of ``team`` (name -> permission,
    password) with that permission on it; the experiment's id."""
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.tracking import MlflowClient

    admin = with_credentials(url, "admin", admin_password)
    experiment_id = MlflowClient(admin).create_experiment(experiment)
    for user, (permission, password) in team.items():
        AuthServiceClient(admin).create_user(user, password)
        AuthServiceClient(admin).grant_user_permission(user, "experiment", experiment_id, permission)
    return experiment_id


@contextmanager
def processes() -> Iterator[list[subprocess.Popen]]:
    """Started processes, each in its own session, stopped (then killed) with their children on the way out."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(
    url: str, process: subprocess.Popen, seconds: float, log: Optional[Path] = None, certificate: Optional[Path] = None
) -> None:
    """Until ``url`` answers (a server coming up); RuntimeError if ``process`` ends first (with the end of its
    ``log``) or ``seconds`` pass. ``certificate``: the one an https server must prove itself with."""
    context = ssl.create_default_context(cafile=str(certificate)) if certificate is not None else None
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            said = f": {log.read_text()[-2000:]}" if log is not None else ""
            raise RuntimeError(f"{' '.join(map(str, process.args[:2]))} exited with {process.returncode}{said}")
        try:
            urllib.request.urlopen(url, timeout=5, context=context).close()
            return
        except OSError:  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds} s") from None
            time.sleep(0.5)
