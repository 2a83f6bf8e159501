"""``flower run DIR --superlink HOST:PORT``: the exported app sent to a SuperLink with ``flwr run``.

The SuperLink is checked first (a refused or unresolvable address is one line, before Flower's own retries),
then a Flower config naming it is written to ``DIR/.flwr`` (``FLWR_HOME``, so the user's own Flower config is
left alone) and ``flwr run`` streams the run's log until it ends. The result is what the ServerApp wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

from pipeline.errors import ConfigError, OutsideFault
from pipeline.paradigms.federated.flower import require_flower
from pipeline.paradigms.federated.flower.deployed import RESULT
from pipeline.paradigms.federated.flower.export import CONNECTION

REACH_SECONDS = 5.0


def run_exported(
    exported: Path, superlink: str, insecure: bool = False, root_certificates: Optional[Path] = None
) -> dict:
    """Run the app exported to ``exported`` on the SuperLink at ``superlink``; the ServerApp's result."""
    require_flower()
    exported = Path(exported).resolve()
    app = exported / "app"
    if not (app / "pyproject.toml").is_file():
        raise ConfigError(f"{exported}: no exported Flower app here (write one with `flower export {exported}`)")
    if insecure == (root_certificates is not None):
        raise ConfigError("say how to reach the SuperLink: --insecure, or --root-certificates CA.pem for TLS")
    check_reachable(superlink)
    output = Path(_run_config(app)["output"])
    result_file = output / RESULT
    result_file.unlink(missing_ok=True)
    home = exported / ".flwr"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(_flower_config(superlink, insecure, root_certificates))
    flwr = shutil.which("flwr", path=str(Path(sys.executable).parent)) or shutil.which("flwr")
    env = os.environ | {"FLWR_HOME": str(home)}
    done = subprocess.run([flwr, "run", str(app), CONNECTION, "--stream"], env=env)
    if done.returncode != 0:
        raise OutsideFault(f"`flwr run` against the SuperLink at {superlink} ended with exit code {done.returncode}")
    if not result_file.is_file():
        raise OutsideFault(
            f"the run on the SuperLink at {superlink} ended without {result_file} "
            "(the ServerApp failed; its error is in the log above and the SuperLink's)"
        )
    return json.loads(result_file.read_text())


def check_reachable(superlink: str) -> None:
    """A TCP connection to ``HOST:PORT``, or one line saying why there is none."""
    host, _, port = superlink.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--superlink {superlink!r}: give it as HOST:PORT, e.g. 127.0.0.1:9092")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS).close()
    except OSError as err:
        raise OutsideFault(
            f"no Flower SuperLink reachable at {superlink} ({err.strerror or err}): start one there "
            "(flower-superlink --port ...) or correct --superlink"
        ) from None


def _run_config(app: Path) -> dict:
    import tomllib

    return tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


def _flower_config(superlink: str, insecure: bool, root_certificates: Optional[Path]) -> str:
    security = (
        "insecure = true" if insecure else f"root-certificates = {json.dumps(str(Path(root_certificates).resolve()))}"
    )
    return f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\naddress = "{superlink}"\n{security}\n'
