"""Deterministic, stratified splits of index arrays.

All functions take and return integer index arrays into the dataset (or into a split),
so the invariants (no overlap, exact shots, full coverage) are easy to check.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import DataError


def split_train_val_test(
    idx: np.ndarray,
    y: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
    where: str,
    classes: np.ndarray | None = None,
    not_in_test: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-class split of ``idx`` (labels ``y[idx]``) into train/val/test, each class in all three.

    Ids in ``not_in_test`` never go to test (e.g. what a reused model trained on); a class with
    too few others gets a smaller test share.
    """
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(y[idx]):
        members = rng.permutation(idx[y[idx] == label])
        if len(members) < 3:
            raise DataError(
                f"{where}: class {_name(label, classes)} has {len(members)} example(s); a train/val/test split needs "
                "at least 3"
            )
        n_test = max(1, round(test_fraction * len(members)))
        if not_in_test is not None:
            allowed = ~np.isin(members, not_in_test)
            members = np.concatenate([members[allowed], members[~allowed]])  # allowed first, each part still shuffled
            n_test = min(n_test, int(allowed.sum()))
            if n_test == 0:
                raise DataError(f"{where}: class {_name(label, classes)} has no example left for the test split")
        n_val = max(1, round(val_fraction * len(members)))
        n_val = min(n_val, len(members) - n_test - 1)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def split_fraction(
    idx: np.ndarray,
    y: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    where: str,
    classes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class split of ``idx`` into (about ``fraction`` of each class, the rest), both non-empty per class."""
    first, rest = [], []
    for label in np.unique(y[idx]):
        members = rng.permutation(idx[y[idx] == label])
        if len(members) < 2:
            raise DataError(
                f"{where}: class {_name(label, classes)} has {len(members)} example(s); splitting it in two needs at "
                "least 2"
            )
        n_first = min(max(1, round(fraction * len(members))), len(members) - 1)
        first.append(members[:n_first])
        rest.append(members[n_first:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(rest))


def take_per_class(
    idx: np.ndarray,
    y: np.ndarray,
    per_class: int,
    rng: np.random.Generator,
    where: str,
    purpose: str,
    classes: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``per_class`` examples of every class in ``labels`` (default: those in ``idx``), and what is left."""
    taken, rest = [], []
    for label in np.unique(y[idx]) if labels is None else labels:
        members = rng.permutation(idx[y[idx] == label])
        if len(members) < per_class:
            raise DataError(
                f"{where}: class {_name(label, classes)} has {len(members)} example(s) left for the {purpose}, which "
                f"needs {per_class} per class"
            )
        taken.append(members[:per_class])
        rest.append(members[per_class:])
    return np.sort(np.concatenate(taken)), np.sort(np.concatenate(rest))


def _name(label: int, classes: np.ndarray | None) -> str:
    """The user's own label for a class index, for error messages."""
    return str(classes[label]) if classes is not None else str(label)


def partition_iid(n: int, num_clients: int, rng: np.random.Generator) -> np.ndarray:
    """Client id (0..num_clients-1) for each of ``n`` examples, shuffled into near-equal parts."""
    if n < num_clients:
        raise DataError(f"{n} training examples cannot be shared among {num_clients} clients")
    clients = np.empty(n, dtype=np.int64)
    for client, part in enumerate(np.array_split(rng.permutation(n), num_clients)):
        clients[part] = client
    return clients


def partition_dirichlet(
    y: np.ndarray, num_clients: int, alpha: float, min_size: int, rng: np.random.Generator, max_tries: int = 1000
) -> np.ndarray:
    """Label-skewed client ids: each class is shared among clients in Dirichlet(alpha) proportions.

    Small ``alpha`` gives each client few classes; large ``alpha`` approaches IID. Draws are
    repeated until every client holds at least ``min_size`` examples.
    """
    for _ in range(max_tries):
        clients = np.empty(len(y), dtype=np.int64)
        for label in np.unique(y):
            members = rng.permutation(np.nonzero(y == label)[0])
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, part in enumerate(np.split(members, cuts)):
                clients[part] = client
        if np.bincount(clients, minlength=num_clients).min() >= min_size:
            return clients
    raise DataError(
        f"could not give each of {num_clients} clients at least {min_size} examples with Dirichlet alpha={alpha} "
        f"in {max_tries} draws; lower prepare.federated.num_clients or min_samples_per_client, or raise dirichlet_alpha"
    )


def partition_shards(y: np.ndarray, num_clients: int, shards_per_client: int, rng: np.random.Generator) -> np.ndarray:
    """Pathological label skew (McMahan et al. 2017): sort by label, cut into equal shards, deal each client a few.

    With two shards per client most clients hold two classes.
    """
    n_shards = num_clients * shards_per_client
    if len(y) < n_shards:
        raise DataError(
            f"{len(y)} training examples cannot be cut into {num_clients} clients x {shards_per_client} shards; "
            "lower prepare.federated.num_clients or shards_per_client"
        )
    by_label = np.argsort(y, kind="stable")
    clients = np.empty(len(y), dtype=np.int64)
    for shard, owner in zip(np.array_split(by_label, n_shards), rng.permutation(n_shards) % num_clients):
        clients[shard] = owner
    return clients


def client_class_counts(clients: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Matrix of how many examples of each class (columns) every client (rows) holds."""
    counts = np.zeros((int(clients.max()) + 1, num_classes), dtype=np.int64)
    np.add.at(counts, (clients, y), 1)
    return counts


def label_skew(clients: np.ndarray, y: np.ndarray) -> float:
    """Mean total-variation distance between each client's label distribution and the global one (0 = IID)."""
    counts = client_class_counts(clients, y, int(y.max()) + 1)
    counts = counts[counts.sum(axis=1) > 0]  # clients that hold nothing have no distribution
    overall = counts.sum(axis=0) / counts.sum()
    distances = 0.5 * np.abs(counts / counts.sum(axis=1, keepdims=True) - overall).sum(axis=1)
    return float(distances.mean())
