"""Split invariants: no overlap, exact shots, clients cover the training split once, skew follows alpha."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.data.prepared import SPLITS, load_task, read_arrays
from pipeline.data.splits import label_skew, partition_dirichlet, partition_iid
from pipeline.seeding import rng_for
from tests.conftest import make_params


@pytest.fixture(scope="module", params=["domain_shift", "new_classes"])
def prepared(request):
    return prepare_data(make_params(prepare={"target_kind": request.param}))


def assert_disjoint(task):
    ids = [set(task.ids[s].tolist()) for s in SPLITS]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_no_example_in_two_splits_of_a_task(prepared):
    for task in (prepared.source, prepared.target, prepared.full):
        assert_disjoint(task)


def test_full_split_uses_every_example_once(prepared):
    ids = np.concatenate([prepared.full.ids[s] for s in SPLITS])
    assert sorted(ids.tolist()) == list(range(len(prepared.dataset.y)))


def test_source_and_target_never_share_an_example(prepared):
    source = np.concatenate([prepared.source.ids[s] for s in SPLITS])
    target = np.concatenate([prepared.target.ids[s] for s in SPLITS])
    assert not set(source.tolist()) & set(target.tolist())


@pytest.mark.parametrize("shots", [1, 3, 10])
def test_target_has_exactly_the_shots_per_class(shots):
    prepared = prepare_data(make_params(prepare={"shots_per_class": shots, "target_val_per_class": 4}))
    assert np.bincount(prepared.target.y["train"]).tolist() == [shots] * prepared.target.num_classes
    assert np.bincount(prepared.target.y["val"]).tolist() == [4] * prepared.target.num_classes


def test_new_classes_splits_the_label_set():
    prepared = prepare_data(make_params(prepare={"target_kind": "new_classes"}))
    assert prepared.source.classes.tolist() == [0, 1, 2, 3, 4]
    assert prepared.target.classes.tolist() == [5, 6, 7, 8, 9]
    assert set(prepared.target.y["train"].tolist()) == {0, 1, 2, 3, 4}  # relabelled for a 5-way head


def test_domain_shift_adds_noise_to_the_target_only():
    params = make_params(prepare={"target_kind": "domain_shift", "noise_std": 0.3})
    prepared = prepare_data(params)
    raw = prepared.dataset.X
    target, source = prepared.target, prepared.source
    assert np.array_equal(source.X["train"], raw[source.ids["train"]])
    shift = target.X["train"] - raw[target.ids["train"]]
    assert 0.25 < shift.std() < 0.35


def test_client_partitions_cover_the_training_split_exactly_once(prepared):
    n = len(prepared.full.y["train"])
    num_clients = 10
    for scheme, clients in prepared.partitions.items():
        assert clients.shape == (n,), scheme  # one client id per example: nobody twice, nobody left out
        assert np.bincount(clients, minlength=num_clients).min() >= 2, scheme
        assert set(clients.tolist()) == set(range(num_clients)), scheme


def test_dirichlet_skew_grows_as_alpha_falls():
    y = np.repeat(np.arange(10), 100)
    skews = [label_skew(partition_dirichlet(y, 10, alpha, 1, rng_for(0, "test")), y) for alpha in (100.0, 1.0, 0.1)]
    assert skews[0] < skews[1] < skews[2]
    iid = label_skew(partition_iid(len(y), 10, rng_for(0, "test")), y)
    assert iid < skews[1]


def test_active_learning_seed_and_pool_partition_the_training_split(prepared):
    labelled, pool = prepared.labelled, prepared.pool
    assert len(labelled) == 20
    assert not set(labelled.tolist()) & set(pool.tolist())
    assert sorted(np.concatenate([labelled, pool]).tolist()) == list(range(len(prepared.full.y["train"])))


def test_same_seed_same_splits_other_seed_other_splits():
    a, b = prepare_data(make_params()), prepare_data(make_params())
    c = prepare_data(make_params(seed=7))
    assert np.array_equal(a.target.ids["train"], b.target.ids["train"])
    assert np.array_equal(a.partitions["dirichlet"], b.partitions["dirichlet"])
    assert not np.array_equal(a.target.ids["train"], c.target.ids["train"])


def test_written_files_read_back_identically(tmp_path):
    prepared = prepare_data(make_params())
    write_prepared(prepared, tmp_path)
    target = load_task(tmp_path / "target.npz")
    assert np.array_equal(target.X["test"], prepared.target.X["test"])
    assert np.array_equal(read_arrays(tmp_path / "federated.npz")["iid"], prepared.partitions["iid"])
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_summary_counts_classes_per_split_and_per_client(prepared):
    summary = prepared.summary()
    for scheme in ("iid", "dirichlet"):
        per_client = np.array(summary["federated"][scheme]["client_class_counts"])
        assert per_client.sum(axis=0).tolist() == summary["full"]["class_counts"]["train"]
        assert per_client.sum(axis=1).tolist() == summary["federated"][scheme]["client_sizes"]
