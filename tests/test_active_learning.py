"""Active learning: queries, the labelled set's growth, reproducibility, pseudo-labels, the stage's runs and the human
loop."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.data.prepared import load_task
from pipeline.errors import ConfigError, DataError
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.active_learning.annotate import export_query, import_answers
from pipeline.paradigms.active_learning.config import QUERY_STRATEGIES
from pipeline.paradigms.active_learning.curves import area_under_curve, labels_to_reach
from pipeline.paradigms.active_learning.labels import LabelState, load_seed_state
from pipeline.paradigms.active_learning.learner import Learner
from pipeline.paradigms.active_learning.rounds import simulate
from pipeline.paradigms.active_learning.run import run_active_learning
from pipeline.paradigms.active_learning.strategies import query_strategy
from pipeline.seeding import seed_everything
from pipeline.tracking.contract import CONTRACT_METRICS as CONTRACT
from tests.conftest import make_params, stage_paths


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("al-data")
    paths = stage_paths("active_learning", root)
    write_prepared(prepare_data(make_params()), paths.data)
    data = load_task(paths.prepared("full"))
    return paths, data, load_seed_state(paths.prepared("active_learning"), data.y["train"])


def simulation(data, seed_state, strategy, params=None, seed=42):
    params = params or make_params()
    seed_everything(seed)
    model = build_classifier(params.model, data.input_shape, data.num_classes)
    cfg = params.active_learning
    learner = Learner(model, data.num_classes, params.trainer_for("active_learning"), cfg.train_steps, cfg.warm_start)
    return simulate(learner, data, seed_state, strategy, cfg, seed)


@pytest.mark.parametrize("strategy", QUERY_STRATEGIES)
def test_no_example_is_queried_twice_and_the_labelled_set_grows_by_the_query_size(prepared, strategy):
    _, data, seed_state = prepared
    cfg = make_params().active_learning
    sim = simulation(data, seed_state, strategy)
    asked = np.concatenate(sim.queries)
    assert len(sim.queries) == cfg.rounds
    assert [len(q) for q in sim.queries] == [cfg.query_size] * cfg.rounds
    assert len(np.unique(asked)) == len(asked)
    assert not np.isin(asked, seed_state.ids).any()
    assert [r["labels"] for r in sim.rows] == [len(seed_state) + i * cfg.query_size for i in range(cfg.rounds + 1)]
    assert np.array_equal(sim.state.ids, np.concatenate([seed_state.ids, asked]))
    assert np.array_equal(sim.state.labels, data.y["train"][sim.state.ids])  # the oracle's answers
    assert len(sim.state.pool) == len(seed_state.pool) - len(asked) and not np.isin(asked, sim.state.pool).any()


def test_random_queries_are_reproducible_with_a_fixed_seed(prepared):
    _, data, seed_state = prepared
    first, again = (simulation(data, seed_state, "random") for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first.queries, again.queries))
    assert [r["test/acc"] for r in first.rows] == [r["test/acc"] for r in again.rows]
    other = simulation(data, seed_state, "random", seed=7)
    assert not np.array_equal(first.queries[0], other.queries[0])


def test_the_label_budget_shortens_the_last_query(prepared):
    _, data, seed_state = prepared
    params = make_params(active_learning={"label_budget": len(seed_state) + 25, "rounds": 10})
    sim = simulation(data, seed_state, "margin", params)
    assert [len(q) for q in sim.queries] == [10, 10, 5]
    assert sim.rows[-1]["labels"] == len(seed_state) + 25


def test_pool_subsampling_queries_only_from_the_subsample(prepared):
    _, data, seed_state = prepared
    params = make_params(active_learning={"pool_subsample": 50})
    sim = simulation(data, seed_state, "entropy", params)
    assert [len(q) for q in sim.queries] == [10, 10, 10]
    assert len(np.unique(np.concatenate(sim.queries))) == 30


def test_cooperative_rounds_train_on_pseudo_labels_but_never_keep_them(prepared):
    _, data, seed_state = prepared
    params = make_params(active_learning={"cooperative": True, "pseudo_label_threshold": 0.3, "train_steps": 60})
    sim = simulation(data, seed_state, "least_confidence", params)
    counts = [r["al/pseudo_labels"] for r in sim.rows]
    assert counts[0] == 0 and all(c > 0 for c in counts[1:])
    assert all(0.0 <= r["al/pseudo_label_acc"] <= 1.0 for r in sim.rows[1:])
    assert len(sim.state) == len(seed_state) + 3 * 10  # pseudo-labels never join the labelled set
    assert np.array_equal(sim.state.labels, data.y["train"][sim.state.ids])


def test_a_refused_addition_leaves_the_labelled_set_as_it_was():
    state = LabelState.start(np.array([0, 1]), np.array([0, 1]), np.array([2, 3, 4]))
    for ids in ([1, 2], [2, 2], [9]):
        with pytest.raises(DataError):
            state.add(np.array(ids), np.zeros(len(ids)))
    assert state.ids.tolist() == [0, 1] and state.pool.tolist() == [2, 3, 4]
    grown = state.add(np.array([4, 2]), np.array([1, 0]))
    assert grown.ids.tolist() == [0, 1, 4, 2] and grown.labels.tolist() == [0, 1, 1, 0] and grown.pool.tolist() == [3]


def test_uncertainty_strategies_pick_what_they_should():
    probs = np.array([[0.98, 0.01, 0.01], [0.40, 0.35, 0.25], [0.50, 0.49, 0.01], [0.34, 0.33, 0.33]])
    rng = np.random.default_rng(0)
    assert query_strategy("least_confidence").select(probs, 1, rng).tolist() == [3]  # lowest top probability
    assert query_strategy("margin").select(probs, 1, rng).tolist() == [3]
    assert query_strategy("margin").select(probs[:3], 1, rng).tolist() == [2]  # smallest gap between the top two
    assert query_strategy("entropy").select(probs, 2, rng).tolist() == [3, 1]
    # bald: the same mean prediction, but the samples disagree only for example 1
    agree = np.repeat(np.array([[0.5, 0.5]])[..., None], 4, axis=-1)
    disagree = np.array([[[0.9, 0.1, 0.9, 0.1], [0.1, 0.9, 0.1, 0.9]]])
    assert query_strategy("bald").select(np.concatenate([agree, disagree]), 1, rng).tolist() == [1]


def test_curve_summaries():
    assert area_under_curve([10, 20, 30], [0.5, 0.7, 0.9]) == pytest.approx(0.7)
    assert area_under_curve([10], [0.4]) == 0.4
    assert labels_to_reach([10, 20, 30], [0.5, 0.8, 0.7], 0.75) == 20
    assert labels_to_reach([10, 20], [0.5, 0.6], 0.9) is None


def test_params_are_checked():
    assert make_params(active_learning={"strategies": ["margin"]}).active_learning.strategies == ["random", "margin"]
    with pytest.raises(ConfigError, match="bald.*model.dropout"):
        make_params(model={"dropout": 0.0})
    with pytest.raises(ConfigError, match="label_budget = 20"):
        make_params(active_learning={"label_budget": 20})
    with pytest.raises(ConfigError, match="active_learning.trainer: max_epochs = 5.*train_steps"):
        make_params(active_learning={"trainer": {"max_epochs": 5}})
    with pytest.raises(ConfigError, match="active_learning.strategies"):
        make_params(active_learning={"strategies": ["margin", "margin"]})


def test_stage_logs_a_run_per_strategy_with_its_curve(prepared, tracking_dir):
    paths, data, seed_state = prepared
    params = make_params()
    runs = run_active_learning(params, replace(paths, base=tracking_dir / "none.pt").writing_to(tracking_dir))
    assert list(runs) == list(QUERY_STRATEGIES)  # random first
    client = MlflowClient()
    labels = [len(seed_state) + 10 * i for i in range(4)]
    for variant, entry in runs.items():
        run = client.get_run(entry["run_id"])
        assert (
            run.info.status == "FINISHED"
            and run.data.tags["paradigm"] == "active_learning"
            and run.data.tags["variant"] == variant
        )
        assert set(CONTRACT) <= set(run.data.metrics), set(CONTRACT) - set(run.data.metrics)
        assert [m.step for m in client.get_metric_history(entry["run_id"], "test/acc")] == labels
        assert 0 < entry["al/alc"] <= 1 and entry["al/labels_final"] == labels[-1]
        artifacts = {a.path for a in client.list_artifacts(entry["run_id"], "plots")}
        assert {"plots/learning_curves.png", "plots/confusion_matrix.png"} <= artifacts
        assert (tracking_dir / "models" / f"{variant}.pt").is_file()
    assert runs["random"]["al/target_accuracy"] == runs["random"]["test/acc"]
    first = {v: client.get_metric_history(e["run_id"], "test/acc")[0].value for v, e in runs.items()}
    assert len(set(first.values())) == 1, first  # the same seed set, start and shuffling: the same first model
    assert runs["random"]["al/labels_to_target"] <= labels[-1]
    curves = pd.read_csv(tracking_dir / "plots" / "curves.csv")
    assert len(curves) == 5 * 4 and set(curves["variant"]) == set(QUERY_STRATEGIES)
    history = {m.step: m.value for m in client.get_metric_history(runs["margin"]["run_id"], "test/acc")}
    assert curves[curves["variant"] == "margin"].set_index("labels")["test/acc"].to_dict() == pytest.approx(history)


def _fill(csv, data, answer=None):
    """Answer a query with the dataset's labels (as a person would type them), or with ``answer(table)``."""
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    where = {int(r): i for i, r in enumerate(data.ids["train"])}
    table["label"] = [str(data.classes[data.y["train"][where[int(i)]]]) for i in table["id"]]
    (answer or (lambda t: t))(table).to_csv(csv, index=False)
    return table


@pytest.fixture
def labelling(prepared, tracking_dir):
    paths, data, _ = prepared
    params = make_params()
    folder = tracking_dir / "labelling"
    csv = export_query(params, folder, "margin", paths)
    return params, folder, csv, paths, data


def test_export_import_round_trip_labels_exactly_the_exported_ids(labelling):
    params, folder, csv, paths, data = labelling
    before = json.loads((folder / "state.json").read_text())
    exported = pd.read_csv(csv)["id"].tolist()
    assert len(exported) == params.active_learning.query_size and before["pending"] == exported
    assert all((csv.parent / path).is_file() for path in pd.read_csv(csv)["image"])
    filled = _fill(csv, data)
    session = import_answers(params, csv, folder, paths)
    after = json.loads((folder / "state.json").read_text())
    added = {k: v for k, v in after["labelled"].items() if k not in before["labelled"]}
    assert added == dict(zip(filled["id"], filled["label"]))
    assert after["pending"] == [] and after["round"] == 1 and session.round == 1
    assert list(after["labelled"])[: len(before["labelled"])] == list(before["labelled"])
    following = export_query(params, folder, paths=paths)  # continues: a new query of unlabelled ids
    assert following.parent.name == "round_02"
    assert not set(pd.read_csv(following)["id"].astype(str)) & set(after["labelled"])
    steps = [m.step for m in MlflowClient().get_metric_history(after["run_id"], "test/acc")]
    assert steps == [20, 30]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t.assign(id=t["id"].where(t.index != 0, "999999")), "not in this query: [999999]"),
        (lambda t: t.iloc[1:], "rows missing for ids"),
        (lambda t: t.assign(label=t["label"].where(t.index != 2, "")), "no label for ids"),
        (lambda t: t.assign(label=t["label"].where(t.index != 3, "eleven")), "'eleven'"),
        (lambda t: pd.concat([t, t.iloc[:1]]), "listed twice"),
        (lambda t: t.assign(id=t["id"].where(t.index != 0, "7.5")), "not whole numbers"),
        (lambda t: t.drop(columns=["label"]), "no column label"),
    ],
    ids=["unknown-id", "missing-row", "empty-label", "invalid-label", "repeated-id", "bad-id", "no-label-column"],
)
def test_a_bad_import_is_refused_and_the_labelled_set_is_unchanged(labelling, damage, message):
    params, folder, csv, paths, data = labelling
    before = (folder / "state.json").read_bytes()
    _fill(csv, data, damage)
    with pytest.raises(DataError, match="refused|no column") as refused:
        import_answers(params, csv, folder, paths)
    assert message in str(refused.value) and str(csv) in str(refused.value)
    assert (folder / "state.json").read_bytes() == before


def test_answers_saved_by_a_spreadsheet_are_read(labelling):
    params, folder, csv, paths, data = labelling
    filled = _fill(csv, data)
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes().replace(b"\n", b"\r\n"))  # byte-order mark, CRLF
    import_answers(params, csv, folder, paths)
    labelled = json.loads((folder / "state.json").read_text())["labelled"]
    assert {k: labelled[k] for k in filled["id"]} == dict(zip(filled["id"], filled["label"]))


def test_unreadable_answers_and_a_missing_query_are_refused(labelling, tmp_path):
    params, folder, csv, paths, _ = labelling
    before = (folder / "state.json").read_bytes()
    with pytest.raises(DataError, match="cannot read"):
        import_answers(params, tmp_path / "nowhere.csv", folder, paths)
    with pytest.raises(Exception, match="no query is waiting"):
        import_answers(params, csv, tmp_path / "empty-session", paths)
    assert (folder / "state.json").read_bytes() == before


def test_bald_scores_differ_between_dropout_samples(prepared):
    _, data, _ = prepared
    params = make_params()
    seed_everything(0)
    model = build_classifier(params.model, data.input_shape, data.num_classes)
    learner = Learner(model, data.num_classes, params.trainer_for("active_learning"), 5, False)
    samples = learner.mc_dropout_probabilities(torch.from_numpy(data.X["train"][:8]), 4)
    assert samples.shape == (8, data.num_classes, 4)
    assert not np.allclose(samples[..., 0], samples[..., 1])
    assert np.allclose(samples.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(
        learner.probabilities(torch.from_numpy(data.X["train"][:8])),
        learner.probabilities(torch.from_numpy(data.X["train"][:8])),
    )


def test_active_learning_params_errors_name_the_key_and_what_is_allowed():
    from tests.test_config import error_for

    message = error_for({"active_learning": {"strategies": ["random", "coreset"]}})
    assert (
        "active_learning.strategies[1] = 'coreset'" in message
        and "'least_confidence'" in message
        and "'bald'" in message
    )
    assert "active_learning.query_size = 0: must be greater than or equal to 1" in error_for(
        {"active_learning": {"query_size": 0}}
    )
    assert "active_learning.pseudo_label_threshold = 1.5" in error_for(
        {"active_learning": {"pseudo_label_threshold": 1.5}}
    )


@pytest.mark.gpu
def test_rounds_train_and_score_on_the_gpu_when_there_is_one(prepared, tracking_dir):
    paths, _, _ = prepared
    params = make_params(active_learning={"strategies": ["bald"], "rounds": 1})
    runs = run_active_learning(params, replace(paths, base=tracking_dir / "none.pt").writing_to(tracking_dir))
    run = MlflowClient().get_run(runs["bald"]["run_id"])
    assert run.data.tags["device"].startswith("cuda") and runs["bald"]["memory/peak_bytes"] > 0


def test_retraining_restarts_from_the_same_weights_and_warm_start_carries_on(prepared):
    _, data, seed_state = prepared
    params = make_params()
    X, y = torch.from_numpy(data.X["train"][seed_state.ids]), torch.from_numpy(seed_state.labels)
    trained = {}
    for warm in (False, True):
        seed_everything(0)
        learner = Learner(
            build_classifier(params.model, data.input_shape, data.num_classes),
            data.num_classes,
            params.trainer_for("active_learning"),
            10,
            warm,
        )
        trained[warm] = []
        for _ in range(2):
            torch.manual_seed(5)  # the same dropout masks
            learner.fit(X, y, torch.Generator().manual_seed(1))
            trained[warm].append(torch.cat([p.detach().flatten().clone() for p in learner.model.parameters()]))
    # each round starts over: same data and shuffling, same model
    assert torch.equal(trained[False][0], trained[False][1])
    assert torch.equal(trained[True][0], trained[False][0]) and not torch.equal(trained[True][1], trained[True][0])


def test_init_from_base_starts_every_strategy_from_the_pretrained_body(tmp_path_factory):
    from tests.conftest import pretrained_workspace

    params = make_params(active_learning={"init_from_base": True, "strategies": ["margin"], "rounds": 1})
    with pretrained_workspace(tmp_path_factory.mktemp("al-base"), params) as root:
        runs = run_active_learning(params, stage_paths("active_learning", root, "al"))
        assert {MlflowClient().get_run(e["run_id"]).data.tags["init"] for e in runs.values()} == {"pretrained base"}


def test_a_session_state_that_no_longer_fits_the_data_is_refused_clearly(labelling):
    params, folder, csv, paths, data = labelling
    state = json.loads((folder / "state.json").read_text())
    first = next(iter(state["labelled"]))
    state["labelled"][first], state["pending"] = "eleven", []
    (folder / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match="labels \\['eleven'\\].*start a new session"):
        export_query(params, folder, paths=paths)


def test_the_command_line_exports_and_refuses_an_unfilled_csv_in_one_line(prepared, tracking_dir):
    import shutil
    import subprocess
    import sys

    import yaml

    from tests.conftest import PROJECT_ROOT

    paths, data, _ = prepared
    shutil.copytree(paths.data, tracking_dir / "data" / "prepared")
    (tracking_dir / "params.yaml").write_text(yaml.safe_dump(make_params().model_dump(mode="json")))
    env = {**__import__("os").environ, "PYTHONPATH": str(PROJECT_ROOT)}

    def annotate(*args):
        command = [sys.executable, "-m", "pipeline.paradigms.active_learning.annotate", *args]
        return subprocess.run(command, cwd=tracking_dir, env=env, capture_output=True, text=True, timeout=300)

    exported = annotate("export")
    assert exported.returncode == 0, exported.stderr
    assert "labelling/round_01/query.csv" in exported.stdout
    before = (tracking_dir / "labelling" / "state.json").read_bytes()
    refused = annotate("import", "labelling/round_01/query.csv")
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert (
        refused.returncode == 2
        and len(lines) == 1
        and lines[0].startswith("error: ")
        and "no label for ids" in lines[0]
    )
    assert (tracking_dir / "labelling" / "state.json").read_bytes() == before
    assert "labelled after 0 rounds; labelling/round_01/query.csv waits for answers" in annotate("status").stdout
    _fill(tracking_dir / "labelling" / "round_01" / "query.csv", data)
    imported = annotate("import", "labelling/round_01/query.csv", "--stop")
    assert imported.returncode == 0 and "imported 10 labels from" in imported.stderr, imported.stderr
    assert annotate("status").stdout.endswith(" labelled after 1 round\n")


@pytest.mark.parametrize(
    "args, problem",
    [
        (
            ["export", "--strategy", "../../bogus"],
            "argument --strategy: invalid choice: '../../bogus' (choose from 'random', 'least_confidence', 'margin', "
            "'entropy', 'bald')",
        ),
        (["--dir", "params.yaml/labels", "export"], "argument --dir: 'params.yaml/labels' cannot be a folder: "),
        (["import", "nowhere.csv"], "argument csv: no file 'nowhere.csv'"),
        (["export", "--rounds", "3"], "unrecognized arguments: --rounds 3"),
    ],
    ids=["strategy", "dir", "csv", "unknown-option"],
)
def test_the_command_line_checks_every_option_before_any_work(tmp_path, args, problem):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    (tmp_path / "params.yaml").write_text("seed: 42\n")  # no prepared data: work started would fail otherwise
    env = {**__import__("os").environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "pipeline.paradigms.active_learning.annotate", *args]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert problem in lines[0] and lines[0].endswith("(see --help)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing trained, logged or written


def test_a_large_pool_is_scored_in_chunks_with_the_same_predictions(monkeypatch):
    """Scoring holds one chunk's activations at a time; the chunks' predictions are those of one pass."""
    from pipeline.training import in_memory

    params = make_params(trainer={"accelerator": "cpu"})
    seed_everything(0)
    learner = Learner(build_classifier(params.model, (1, 8, 8), 10), 10, params.trainer, steps=1, warm_start=False)
    X = torch.rand(50, 1, 8, 8)
    whole = learner.predict(X)
    monkeypatch.setattr(in_memory, "PREDICT_CHUNK", 7)
    torch.testing.assert_close(learner.predict(X), whole)
    draws = learner.mc_dropout_probabilities(X, samples=3)
    assert draws.shape == (50, 10, 3) and np.allclose(draws.sum(axis=1), 1, atol=1e-5)
    assert not np.allclose(draws[..., 0], draws[..., 1])  # dropout is on: the samples differ


# Query strategies on hand-built probabilities. Rows: top probability, gap between the top two, entropy (nats)
#   0: 0.5 0.5 0.0    -> 0.50, 0.00, 0.693
#   1: 0.4 0.3 0.3    -> 0.40, 0.10, 1.089
#   2: 0.6 0.2 0.2    -> 0.60, 0.40, 0.950
#   3: 0.9 0.1 0.0    -> 0.90, 0.80, 0.325
#   4: 0.45 0.43 0.12 -> 0.45, 0.02, 0.977
POOL = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.6, 0.2, 0.2], [0.9, 0.1, 0.0], [0.45, 0.43, 0.12]])


def entropy_by_hand(p):
    """-sum p log p per row, with 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)


@pytest.mark.parametrize(
    "strategy, order",
    [("least_confidence", [1, 4, 0, 2, 3]), ("margin", [0, 4, 1, 2, 3]), ("entropy", [1, 4, 2, 0, 3])],
)
def test_each_uncertainty_strategy_ranks_the_whole_pool_most_uncertain_first(strategy, order):
    select = query_strategy(strategy).select
    rng = np.random.default_rng(0)
    assert select(POOL, 2, rng).tolist() == order[:2]
    assert select(POOL, 5, rng).tolist() == order
    picked = select(POOL, 9, rng)  # more than the pool holds: all of it, in the same order
    assert picked.tolist() == order and picked.dtype == np.int64


def test_uncertainty_strategies_put_tied_examples_together_in_the_ranking():
    """Rows 0, 2 and 4 are the same, equally uncertain, prediction: the three come first, in some order."""
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5]])
    for strategy in ("least_confidence", "margin", "entropy"):
        picked = query_strategy(strategy).select(probs, 5, np.random.default_rng(0)).tolist()
        assert sorted(picked[:3]) == [0, 2, 4] and picked[3:] == [3, 1], strategy


def test_bald_ranks_by_disagreement_between_dropout_samples_not_by_the_mean_prediction():
    """[n, classes, samples]: rows 0-2 all average to 0.5/0.5; row 1's samples disagree most, row 2's a little,
    row 0's and row 3's not at all."""
    samples = np.array(
        [
            [[0.5, 0.5], [0.5, 0.5]],
            [[0.9, 0.1], [0.1, 0.9]],
            [[0.7, 0.3], [0.3, 0.7]],
            [[0.95, 0.95], [0.05, 0.05]],
        ]
    )
    bald = query_strategy("bald").select(samples, 4, np.random.default_rng(0)).tolist()
    assert bald[:2] == [1, 2] and sorted(bald[2:]) == [0, 3]
    entropy = query_strategy("entropy").select(samples, 4, np.random.default_rng(0)).tolist()
    assert sorted(entropy[:3]) == [0, 1, 2] and entropy[3] == 3  # entropy sees only the mean prediction


def test_random_picks_distinct_positions_reproducibly_and_refuses_more_than_the_pool():
    probs = np.full((6, 3), 1 / 3)
    select = query_strategy("random").select
    picked = select(probs, 4, np.random.default_rng(0))
    assert picked.tolist() == [1, 4, 2, 3]  # the seeded generator's draw without replacement
    assert select(probs, 4, np.random.default_rng(0)).tolist() == picked.tolist()
    assert select(probs, 4, np.random.default_rng(1)).tolist() != picked.tolist()
    assert sorted(select(probs, 6, np.random.default_rng(0)).tolist()) == [0, 1, 2, 3, 4, 5]  # each once
    with pytest.raises(ValueError):
        select(probs, 7, np.random.default_rng(0))


def test_strategies_are_registered_by_name_and_only_bald_scores_dropout_samples():
    from pipeline.paradigms.active_learning.strategies import STRATEGIES

    assert list(STRATEGIES) == ["random", "least_confidence", "margin", "entropy", "bald"]
    assert list(STRATEGIES) == list(QUERY_STRATEGIES)
    assert {name: query_strategy(name).mc_dropout for name in STRATEGIES} == {
        "random": False,
        "least_confidence": False,
        "margin": False,
        "entropy": False,
        "bald": True,
    }
    assert {name: type(query_strategy(name)).__name__ for name in STRATEGIES} == {
        "random": "Random",
        "least_confidence": "LeastConfidence",
        "margin": "Margin",
        "entropy": "Entropy",
        "bald": "Bald",
    }


def test_a_row_whose_score_is_not_finite_is_ranked_last_without_a_warning():
    """baal warns about it and ranks it last; the strategy keeps that warning from the log."""
    import warnings

    probs = np.array([[0.6, 0.4], [np.nan, 0.5], [0.9, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        for strategy in ("least_confidence", "margin", "entropy"):
            assert query_strategy(strategy).select(probs, 3, np.random.default_rng(0)).tolist() == [0, 2, 1]


def test_predictive_entropy_is_minus_sum_p_log_p_of_the_mean_prediction_in_float64():
    from pipeline.paradigms.active_learning.strategies import predictive_entropy

    single = predictive_entropy(POOL.astype(np.float32))
    assert single.dtype == np.float64 and single.shape == (5,)
    assert single == pytest.approx(entropy_by_hand(POOL), rel=1e-6)
    assert single[0] == pytest.approx(np.log(2), rel=1e-6) and single[3] == pytest.approx(0.3251, abs=1e-4)
    samples = np.stack([POOL, POOL[::-1]], axis=-1)  # [n, classes, 2 samples]
    assert predictive_entropy(samples) == pytest.approx(entropy_by_hand((POOL + POOL[::-1]) / 2))
