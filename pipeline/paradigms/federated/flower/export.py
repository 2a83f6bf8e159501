"""``flower export DIR``: the stage's federation as a Flower app for a SuperLink and one SuperNode per client.

``DIR/app`` is the Flower app (``flwr run`` sends it to the SuperLink; the SuperLink and every SuperNode need
this project installed, which the app's code imports). ``DIR/clients/client-K.npz`` is client K's training
data (``X``, ``y``): copy it to the machine of the SuperNode with ``partition-id=K``; it is all the data that
machine ever holds. ``DIR/server`` is what the ServerApp holds: the starting weights (the stage's start,
the pre-trained base when ``federated.init_from_base``) and the validation and test splits it scores the
global model on. The run's result lands in ``DIR/output`` on the SuperLink's machine.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import torch

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import load_task
from pipeline.errors import ConfigError
from pipeline.io import atomic_dir
from pipeline.models.reuse import starting_classifier
from pipeline.paradigms.federated import PARADIGM
from pipeline.paradigms.federated.flower.recipe import ClientRecipe
from pipeline.paradigms.federated.run import load_partitions
from pipeline.paths import StagePaths

PACKAGE = "paradigm_lab_app"
RECIPE = "recipe.json"
START, HELD_OUT = "start.pt", "held_out.npz"
CONNECTION = "paradigm-lab"  # the SuperLink connection's name in the Flower config that `flower run` writes


def client_file(out: Path, client: int) -> Path:
    return Path(out) / "clients" / f"client-{client}.npz"


def export_app(
    params: SharedParams,
    out: Path,
    partition: str | None = None,
    strategy: str | None = None,
    paths: StagePaths = StagePaths.of(PARADIGM.stage),
) -> ClientRecipe:
    """Write the app, the clients' files and the server's files for ``partition`` x ``strategy`` (the first of
    ``federated.partitions`` and ``federated.strategies`` by default) into the folder ``out``."""
    cfg = params.federated
    partition = partition or cfg.partitions[0]
    strategy = strategy or cfg.strategies[0]
    if strategy not in cfg.strategies:
        raise ConfigError(f"--strategy {strategy!r}: not in federated.strategies ({', '.join(cfg.strategies)})")
    data = load_task(paths.prepared(PARADIGM.task))
    assignment = load_partitions(paths.prepared("federated"), [partition], len(data.y["train"]))[partition]
    start = starting_classifier(params.model, data, paths.base, cfg.init_from_base, params.seed).state_dict()
    num_clients = int(assignment.max()) + 1
    recipe = ClientRecipe.of(params, strategy, partition, num_clients, data.input_shape, data.num_classes)
    final = Path(out).resolve()
    with atomic_dir(final) as tmp:
        package = tmp / "app" / PACKAGE
        package.mkdir(parents=True)
        (package / "__init__.py").write_text('"""paradigm-lab\'s federated run as a Flower app (flower export)."""\n')
        (package / "apps.py").write_text(_APPS)
        recipe.write(package / RECIPE)
        (tmp / "app" / "pyproject.toml").write_text(_pyproject(final, f"{partition}/{strategy}"))
        (tmp / "clients").mkdir()
        for k in range(num_clients):
            rows = np.nonzero(assignment == k)[0]
            np.savez(client_file(tmp, k), X=data.X["train"][rows], y=data.y["train"][rows])
        (tmp / "server").mkdir()
        torch.save(start, tmp / "server" / START)
        held = {f"{a}_{split}": getattr(data, a)[split] for a in ("X", "y") for split in ("val", "test")}
        np.savez(tmp / "server" / HELD_OUT, classes=data.classes, **held)
        (tmp / "README.md").write_text(_readme(final, num_clients))
    return recipe


_APPS = '''"""The ServerApp and ClientApp that `flwr run` starts: paradigm-lab's, from the recipe beside this file."""

from pathlib import Path

from pipeline.paradigms.federated.flower.deployed import client_of, server_of

server = server_of(Path(__file__).with_name("recipe.json"))
client = client_of(Path(__file__).with_name("recipe.json"))
'''


def _pyproject(out: Path, variant: str) -> str:
    return textwrap.dedent(
        f"""\
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "federated"
        version = "1.0.0"
        description = "paradigm-lab's federated run {variant} (written by flower export)"
        license = "Apache-2.0"
        dependencies = []  # paradigm-lab itself, installed beside the SuperLink and every SuperNode

        [tool.hatch.build.targets.wheel]
        packages = ["{PACKAGE}"]

        [tool.flwr.app]
        publisher = "paradigm-lab"

        [tool.flwr.app.components]
        serverapp = "{PACKAGE}.apps:server"
        clientapp = "{PACKAGE}.apps:client"

        [tool.flwr.app.config]
        server-data = {json.dumps(str(out / "server"))}  # on the SuperLink's machine
        output = {json.dumps(str(out / "output"))}  # result.json and global.pt, on the SuperLink's machine
        """
    )


def _readme(out: Path, num_clients: int) -> str:
    last = num_clients - 1
    return textwrap.dedent(
        f"""\
        # A paradigm-lab federated run as a Flower app

        Every machine below has paradigm-lab installed (`make setup`, which installs Flower) and its environment
        active in each terminal (`source .venv/bin/activate`). On one machine, the SuperLink (the server's side; its
        Fleet, control and runtime APIs share one port):

            flower-superlink --insecure --disable-runtime-dependency-installation --host 0.0.0.0 --port 9092

        On the machine of each client K in 0..{last}, with its file `clients/client-K.npz` copied there (several
        SuperNodes on one machine each need their own `--port`):

            flower-supernode --insecure --superlink SUPERLINK_HOST:9092 \\
                --node-config "partition-id=K data='/path/to/client-K.npz'"

        Then, from here:

            python -m pipeline.paradigms.federated.flower run {out} --superlink SUPERLINK_HOST:9092 --insecure

        The global model's scores, round by round, are in `{out / "output" / "result.json"}` and its weights in
        `global.pt` there, on the SuperLink's machine. For TLS and SuperNode authentication, see paradigm-lab's
        docs/federated.md ("Federated learning on Flower").
        """
    )
