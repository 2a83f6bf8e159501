"""Federated learning on Flower: the project's clients and server as a Flower ``ClientApp`` and ``ServerApp``.

``federated.engine: flower`` runs every federated run of the stage through Flower's simulation runtime
(:mod:`.simulation`); ``python -m pipeline.paradigms.federated.flower export DIR`` writes the same app for a
Flower SuperLink and one SuperNode per client partition (:mod:`.export`, :mod:`.deployed`) and ``... run DIR``
runs it there (:mod:`.connection`). Either way the
clients train with the in-process engine's local trainer and the server aggregates with its server
(:mod:`pipeline.paradigms.federated.parties`); Flower only carries the messages (:mod:`.messages`) between the
client side (:mod:`.client_app`) and the rounds (:mod:`.server_app`). ``flwr`` is the ``flower`` extra.
"""

from __future__ import annotations

import os

from pipeline.errors import ConfigError

INSTALL_HINT = "pip install -c constraints.txt -e '.[flower]' (make setup installs it)"


def require_flower() -> None:
    """Import ``flwr`` (Flower's usage telemetry off unless asked for), or say in one line how to install it."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    try:
        import flwr  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"federated.engine = 'flower' needs the flwr package, which does not import here ({err}); {INSTALL_HINT}"
        ) from None
