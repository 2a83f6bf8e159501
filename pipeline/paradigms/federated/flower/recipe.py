"""What a Flower ClientApp needs to rebuild its client: the params, the strategy, and where its examples are.

Flower's simulation sends the ClientApp to its workers with every message, so the recipe is small (the
params as JSON and a few paths), never the data. In the simulation a client's examples are its rows of the
prepared task (``partition-id`` in Flower's node config is the client's number); a deployed SuperNode reads
its own file, named by ``data`` in its node config, which is all of the data it ever holds.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import read_arrays
from pipeline.errors import DataError
from pipeline.params import parse_params

PARTITION_ID = "partition-id"  # Flower's node-config key for the client's number
DATA = "data"  # a deployed SuperNode's node-config key: the path of its examples (X, y)


@dataclass(frozen=True)
class ClientRecipe:
    params_json: str
    strategy: str
    partition: str
    num_clients: int
    input_shape: tuple[int, ...]
    num_classes: int
    task_path: Optional[str] = None  # simulation: the prepared task (its train split) ...
    partitions_path: Optional[str] = None  # ... and which client holds each training example

    @classmethod
    def of(
        cls,
        params: SharedParams,
        strategy: str,
        partition: str,
        num_clients: int,
        input_shape: tuple[int, ...],
        num_classes: int,
        task_path: Optional[Path] = None,
        partitions_path: Optional[Path] = None,
    ) -> "ClientRecipe":
        return cls(
            json.dumps(params.model_dump(mode="json")),
            strategy,
            partition,
            num_clients,
            tuple(input_shape),
            num_classes,
            None if task_path is None else str(Path(task_path).resolve()),
            None if partitions_path is None else str(Path(partitions_path).resolve()),
        )

    @property
    def key(self) -> str:
        """Identifies the recipe within a worker process (its trainer and clients are built once per key)."""
        return json.dumps(asdict(self), sort_keys=True)

    def params(self) -> SharedParams:
        return parse_params(json.loads(self.params_json), "the Flower app's params")

    def examples(self, client: int, node_config: dict) -> tuple[np.ndarray, np.ndarray]:
        """Client ``client``'s training examples and labels: from its own file when its node config names one
        (a deployed SuperNode), else its rows of the prepared task (the simulation)."""
        if DATA in node_config:
            path = Path(str(node_config[DATA]))
            arrays = read_arrays(path)
            if "X" not in arrays or "y" not in arrays:
                raise DataError(f"{path}: a client's file holds X and y (see flower export), not {sorted(arrays)}")
            return arrays["X"], arrays["y"]
        if self.task_path is None or self.partitions_path is None:
            raise DataError(f"this SuperNode's node config has no '{DATA}' (the path of its client file)")
        X, y, assignment = _pooled(self.task_path, self.partitions_path, self.partition)
        rows = np.nonzero(assignment == client)[0]
        return X[rows], y[rows]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> "ClientRecipe":
        fields = json.loads(Path(path).read_text())
        return cls(**(fields | {"input_shape": tuple(fields["input_shape"])}))


@functools.lru_cache(maxsize=4)
def _pooled(task_path: str, partitions_path: str, partition: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The prepared training split and its partition, read once per worker process."""
    task, partitions = read_arrays(Path(task_path)), read_arrays(Path(partitions_path))
    return task["X_train"], task["y_train"], partitions[partition]


def client_number(node_config: dict, num_clients: int) -> int:
    """The client this node is, from its ``partition-id``; refused unless it is one of ``0..num_clients - 1``."""
    if PARTITION_ID not in node_config:
        raise DataError(f"this SuperNode's node config has no '{PARTITION_ID}' (its client number)")
    number = int(node_config[PARTITION_ID])
    if not 0 <= number < num_clients:
        raise DataError(f"{PARTITION_ID} = {number}: this federation has clients 0..{num_clients - 1}")
    return number
