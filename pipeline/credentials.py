"""Credentials that ride in URIs: shown masked, linked without them, never written.

A user may pass a password inside any URI the project reads: the tracking URI
(``https://alice:PASSWORD@mlflow-host``, which MLflow and ``requests`` accept), the registry URI, a sweep's
storage URL (``postgresql+psycopg://optuna:PASSWORD@db-host/optuna``) or a DVC remote. Every place that shows
a URI (the terminal, an error line, a report, an MLflow param, tag or artifact) passes it through
:func:`masked`; every link a person clicks is built from :func:`without_credentials`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://user:password@ (the password up to the last @ before the host: passwords with @ are percent-encoded)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*):(?P<password>[^\s/@]*)@")
# ?password=..., &token=..., &X-Amz-Signature=... in a URL's query (a database URL's options, a signed link)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][\w.\-]*(?:password|passwd|pwd|token|secret|key|signature|credential)=)(?P<value>[^&\s#]+)",
    re.IGNORECASE,
)


def masked(text: str) -> str:
    """``text`` with every password of a URI in it replaced by ``***`` (the user name stays: it says who)."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def without_credentials(uri: str) -> str:
    """``uri`` with its user name and password removed: a link a browser can open and anyone may read."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


def user_of(uri: str) -> str | None:
    """Who a request to ``uri`` is made as: the user name the URI carries, else MLflow's MLFLOW_TRACKING_USERNAME."""
    return urlsplit(uri).username or os.environ.get("MLFLOW_TRACKING_USERNAME")
