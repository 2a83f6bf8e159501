"""Split invariants: no overlap, exact shots, clients cover the training split once, skew follows alpha."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.data.prepared import SPLITS, load_task, read_arrays
from pipeline.data.splits import (
    client_class_counts,
    label_skew,
    partition_dirichlet,
    partition_iid,
    partition_shards,
    split_fraction,
    split_train_val_test,
    take_per_class,
)
from pipeline.errors import DataError
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


# Unit checks of the split functions on tiny hand-built label arrays. Each class's ids are shuffled by the generator
# in label order, so the expected splits are the generator's own permutations cut at the sizes worked out by hand.
CLASSES = np.array(["ant", "bee", "eel"])  # the user's own names for labels 0, 1, 2 in error messages


def shuffled(seed, *groups):
    """Each id group as the split functions shuffle it: one permutation after the other from the same generator."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.asarray(group)) for group in groups]


def replay_dirichlet_draw(twin, y, num_clients, alpha):
    """One draw of ``partition_dirichlet`` replayed on a twin generator: label by label, shuffle the label's ids, draw
    its shares, and cut the shuffled ids at the floor of each running share times their number."""
    clients = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        ids = twin.permutation(np.nonzero(y == label)[0])
        shares = twin.dirichlet(np.full(num_clients, alpha))
        cuts = np.floor(np.cumsum(shares)[:-1] * len(ids)).astype(int)
        for client, part in enumerate(np.split(ids, cuts)):
            clients[part] = client
    return clients


def test_a_stratified_split_cuts_each_shuffled_class_into_test_val_and_train_at_the_rounded_fractions():
    """Class 0 (20 ids): test round(0.2*20) = 4, val round(0.1*20) = 2; class 1 (10 ids): 2 and 1."""
    y = np.array([9, 9] + [0] * 20 + [1] * 10)  # the first two ids are not in idx
    idx = np.arange(2, 32)
    split = split_train_val_test(idx, y, 0.1, 0.2, np.random.default_rng(3), "data")
    zeros, ones = shuffled(3, np.arange(2, 22), np.arange(22, 32))
    assert split["test"].tolist() == sorted(zeros[:4].tolist() + ones[:2].tolist())
    assert split["val"].tolist() == sorted(zeros[4:6].tolist() + ones[2:3].tolist())
    assert split["train"].tolist() == sorted(zeros[6:].tolist() + ones[3:].tolist())
    assert sorted(np.concatenate(list(split.values())).tolist()) == idx.tolist()  # each id exactly once


def test_a_stratified_split_is_the_same_for_the_same_seed_and_differs_for_another():
    y = np.repeat([0, 1], 15)
    first, again, other = (
        split_train_val_test(np.arange(30), y, 0.2, 0.2, np.random.default_rng(s), "data") for s in (0, 0, 1)
    )
    assert all(np.array_equal(first[name], again[name]) for name in SPLITS)
    assert not np.array_equal(first["test"], other["test"])


def test_the_smallest_classes_still_get_one_example_in_each_of_train_val_and_test():
    """3 ids: 1/1/1. 4 ids at 0.4/0.4: test round(1.6) = 2, val 2 capped to 1 so training keeps one."""
    y = np.array([0] * 3 + [1] * 4)
    split = split_train_val_test(np.arange(7), y, 0.4, 0.4, np.random.default_rng(0), "data")
    assert [np.bincount(y[split[name]], minlength=2).tolist() for name in ("train", "val", "test")] == [
        [1, 1],
        [1, 1],
        [1, 2],
    ]
    small = split_train_val_test(np.arange(3), np.zeros(3, dtype=int), 0.1, 0.1, np.random.default_rng(0), "data")
    assert [len(small[name]) for name in ("train", "val", "test")] == [1, 1, 1]


def test_a_class_too_small_for_a_three_way_split_is_refused_by_its_own_name():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    with pytest.raises(
        DataError, match=r"^data/full: class eel has 2 example\(s\); a train/val/test split needs at least 3$"
    ):
        split_train_val_test(np.arange(8), y, 0.2, 0.2, np.random.default_rng(0), "data/full", CLASSES)
    with pytest.raises(DataError, match=r"^data/full: class 2 has 2 example\(s\)"):
        split_train_val_test(np.arange(8), y, 0.2, 0.2, np.random.default_rng(0), "data/full")


def test_ids_kept_out_of_test_never_reach_it_and_shrink_that_class_s_test_share():
    """Test would take round(0.3*10) = 3 per class, but only ids 8, 9 (class 0) and 19 (class 1) may go there."""
    y = np.repeat([0, 1], 10)
    not_in_test = np.array([0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18])
    split = split_train_val_test(np.arange(20), y, 0.2, 0.3, np.random.default_rng(0), "data", None, not_in_test)
    assert split["test"].tolist() == [8, 9, 19]
    assert np.bincount(y[split["val"]]).tolist() == [2, 2]
    assert sorted(np.concatenate([split["val"], split["train"]]).tolist()) == not_in_test.tolist()


def test_a_class_with_every_id_kept_out_of_test_is_refused_by_its_own_name():
    y = np.repeat([0, 1], 5)
    for classes, name in ((CLASSES, "bee"), (None, "1")):
        with pytest.raises(DataError, match=rf"^data: class {name} has no example left for the test split$"):
            split_train_val_test(
                np.arange(10), y, 0.2, 0.2, np.random.default_rng(0), "data", classes, np.arange(5, 10)
            )


def test_split_fraction_takes_the_rounded_share_of_each_class_but_leaves_each_part_one_example():
    """At 0.2: 5 ids give 1, 2 ids give max(1, 0) = 1, 10 ids give 2. At 0.8: 5 ids give 4, 2 ids give 2 capped to 1."""
    y = np.array([0] * 5 + [1] * 2 + [2] * 10)
    groups = (np.arange(5), np.arange(5, 7), np.arange(7, 17))
    for fraction, sizes in ((0.2, (1, 1, 2)), (0.8, (4, 1, 8))):
        first, rest = split_fraction(np.arange(17), y, fraction, np.random.default_rng(5), "data")
        parts = shuffled(5, *groups)
        assert first.tolist() == sorted(sum((p[:n].tolist() for p, n in zip(parts, sizes)), []))
        assert rest.tolist() == sorted(sum((p[n:].tolist() for p, n in zip(parts, sizes)), []))


def test_split_fraction_refuses_a_class_of_one_by_its_own_name():
    y = np.array([0, 0, 1, 1, 2])
    with pytest.raises(DataError, match=r"^data: class eel has 1 example\(s\); splitting it in two needs at least 2$"):
        split_fraction(np.arange(5), y, 0.5, np.random.default_rng(0), "data", CLASSES)
    with pytest.raises(DataError, match=r"^data: class 2 has 1 example\(s\)"):
        split_fraction(np.arange(5), y, 0.5, np.random.default_rng(0), "data")


def test_take_per_class_takes_exactly_the_shots_of_each_class_and_returns_the_rest():
    """Class 1 has exactly the 2 shots asked for: it is all taken, none left."""
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    taken, rest = take_per_class(np.arange(9), y, 2, np.random.default_rng(1), "data", "shots")
    zeros, ones, twos = shuffled(1, [0, 1, 2, 3], [4, 5], [6, 7, 8])
    assert taken.tolist() == sorted(zeros[:2].tolist() + ones.tolist() + twos[:2].tolist())
    assert rest.tolist() == sorted(zeros[2:].tolist() + twos[2:].tolist())


def test_take_per_class_goes_through_the_given_labels_in_their_order():
    y = np.array([0, 0, 0, 1, 1, 1])
    taken, rest = take_per_class(np.arange(6), y, 1, np.random.default_rng(2), "data", "shots", None, np.array([1, 0]))
    ones, zeros = shuffled(2, [3, 4, 5], [0, 1, 2])  # label 1 is shuffled first
    assert taken.tolist() == sorted([ones[0], zeros[0]])
    assert rest.tolist() == sorted(ones[1:].tolist() + zeros[1:].tolist())


def test_take_per_class_refuses_a_class_short_of_shots_even_one_missing_from_the_ids():
    y = np.array([0, 0, 1, 2, 2])
    with pytest.raises(
        DataError, match=r"^data: class bee has 1 example\(s\) left for the shots, which needs 2 per class$"
    ):
        take_per_class(np.arange(5), y, 2, np.random.default_rng(0), "data", "shots", CLASSES)
    with pytest.raises(DataError, match=r"^data: class 1 has 1 example\(s\) left for the shots"):
        take_per_class(np.arange(5), y, 2, np.random.default_rng(0), "data", "shots")
    with pytest.raises(DataError, match=r"^data: class eel has 0 example\(s\) left for the shots"):
        take_per_class(np.arange(2), y, 1, np.random.default_rng(0), "data", "shots", CLASSES, np.array([0, 2]))


def test_an_iid_partition_deals_the_shuffled_examples_into_near_equal_consecutive_parts():
    clients = partition_iid(10, 3, np.random.default_rng(4))
    (order,) = shuffled(4, np.arange(10))
    expected = np.empty(10, dtype=np.int64)
    expected[order[:4]], expected[order[4:7]], expected[order[7:]] = 0, 1, 2
    assert clients.tolist() == expected.tolist() and clients.dtype == np.int64
    assert sorted(partition_iid(3, 3, np.random.default_rng(4)).tolist()) == [0, 1, 2]  # one example each
    with pytest.raises(DataError, match="^2 training examples cannot be shared among 3 clients$"):
        partition_iid(2, 3, np.random.default_rng(4))


def test_a_dirichlet_partition_cuts_each_shuffled_class_at_the_floor_of_its_drawn_shares():
    """Each class's shuffled ids are cut at the floor of its running shares times its size. Seed 0's first draw gives
    clients 5, 3 and 4 examples: the smallest holds exactly min_size, so that draw is kept."""
    y = np.array([0] * 8 + [1] * 4)
    rng = np.random.default_rng(0)
    clients = partition_dirichlet(y, 3, 0.7, 3, rng)
    twin = np.random.default_rng(0)
    expected = replay_dirichlet_draw(twin, y, 3, 0.7)
    assert np.bincount(expected).tolist() == [5, 3, 4]  # the premise: one draw, smallest client at min_size
    assert clients.tolist() == expected.tolist() and clients.dtype == np.int64
    assert rng.bit_generator.state == twin.bit_generator.state  # one draw, nothing more


def test_a_dirichlet_partition_draws_again_while_a_client_holds_too_few():
    """Seed 688 at alpha 0.05: the first draw leaves client 2 (the last) empty, the second client 1; the third gives
    every client at least the one example asked for, the smallest exactly one, and is the one returned."""
    y = np.array([0] * 8 + [1] * 4)
    rng = np.random.default_rng(688)
    clients = partition_dirichlet(y, 3, 0.05, 1, rng)
    twin = np.random.default_rng(688)
    draws = [replay_dirichlet_draw(twin, y, 3, 0.05) for _ in range(3)]
    assert [np.bincount(d, minlength=3).tolist() for d in draws] == [[7, 5, 0], [7, 0, 5], [1, 3, 8]]  # the premise
    assert clients.tolist() == draws[2].tolist()
    assert rng.bit_generator.state == twin.bit_generator.state  # exactly three draws


def test_a_dirichlet_partition_gives_up_after_1000_draws():
    """Three clients of at least 3 examples need 9 but there are only 6, so every draw fails; it stops after 1000."""
    y = np.array([0] * 4 + [1] * 2)
    rng = np.random.default_rng(0)
    with pytest.raises(
        DataError, match="^could not give each of 3 clients at least 3 examples with Dirichlet alpha=0.5 in 1000 draws"
    ):
        partition_dirichlet(y, 3, 0.5, 3, rng)
    twin = np.random.default_rng(0)
    for _ in range(1000):
        replay_dirichlet_draw(twin, y, 3, 0.5)
    assert rng.bit_generator.state == twin.bit_generator.state  # exactly 1000 draws, not one more or fewer


def test_a_shard_partition_deals_label_sorted_shards_keeping_the_original_order_within_a_label():
    """Labels 1, 0, 1, 0, ...: sorted stably, ids 1 3 ... 11 then 0 2 ... 10, cut into equal shards in that order; the
    generator's permutation of the shard numbers, modulo the number of clients, says which client gets each shard."""
    y = np.array([1, 0] * 6)
    by_label = [1, 3, 5, 7, 9, 11, 0, 2, 4, 6, 8, 10]
    clients = partition_shards(y, 2, 6, np.random.default_rng(3))  # twelve shards of one id
    owners = np.random.default_rng(3).permutation(12) % 2
    expected = np.empty(12, dtype=np.int64)
    expected[by_label] = owners
    assert clients.tolist() == expected.tolist() and clients.dtype == np.int64
    halves = partition_shards(y, 3, 2, np.random.default_rng(3))  # six shards of two: 1 3 | 5 7 | 9 11 | 0 2 | ...
    owners = np.random.default_rng(3).permutation(6) % 3
    expected[by_label] = np.repeat(owners, 2)
    assert halves.tolist() == expected.tolist()
    assert sorted(partition_shards(np.arange(6), 3, 2, np.random.default_rng(0)).tolist()) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(
        DataError,
        match="^5 training examples cannot be cut into 3 clients x 2 shards; lower prepare.federated.num_clients or "
        "shards_per_client$",
    ):
        partition_shards(np.arange(5), 3, 2, np.random.default_rng(0))


def test_client_class_counts_are_whole_numbers_per_client_and_class():
    counts = client_class_counts(np.array([0, 0, 2, 1, 2]), np.array([1, 0, 1, 1, 2]), 4)
    assert counts.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0]] and counts.dtype == np.int64


def test_label_skew_is_the_mean_total_variation_over_clients_that_hold_examples():
    """Overall 4/7, 3/7; client 0 holds 3/4, 1/4 (TV 5/28), client 1 0, 1 (16/28), client 3 1, 0 (12/28); 2 is empty."""
    clients = np.array([0, 0, 0, 0, 1, 1, 3])
    y = np.array([0, 0, 0, 1, 1, 1, 0])
    assert label_skew(clients, y) == pytest.approx(11 / 28)
    assert label_skew(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0])) == 0.0  # every client like the whole
