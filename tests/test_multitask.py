"""Multi-task learning on tiny models and a real MLflow store.

Mechanics only, never which approach wins: the shared body learns from every task's loss,
uncertainty weights move, task definitions that cannot work are refused clearly, and the
stage logs the per-task metrics and the comparison with the separate models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.compare.sources import listed_runs
from pipeline.config.schema import ModelConfig, TrainerConfig
from pipeline.data.prepare import prepare_data
from pipeline.data.prepared import TaskData, load_task
from pipeline.errors import ConfigError, DataError
from pipeline.models.checkpoint import load_classifier, load_multitask
from pipeline.models.classifier import build_classifier
from pipeline.models.loss_weighting import FixedWeighting, UncertaintyWeighting
from pipeline.models.multitask import Branch, build_multitask_net
from pipeline.paradigms.multitask.compare import compare_with_separate_models
from pipeline.paradigms.multitask.config import TaskSpec
from pipeline.paradigms.multitask.run import (
    NOTHING_FILE,
    NothingToCompare,
    run_multitask,
    tasks_to_compare,
    write_nothing_to_compare,
)
from pipeline.paradigms.multitask.task_labels import default_tasks, derive_task_labels, distinct_tasks
from pipeline.paths import StagePaths
from pipeline.reporting.results import Results
from pipeline.tracking.contract import CONTRACT_METRICS as CONTRACT
from pipeline.tracking.outputs import write_stage_metrics
from pipeline.training.multitask_module import MultiTaskModule
from tests.conftest import deep_merge, make_params, pretrained_workspace, stage_paths

TINY_MULTITASK = {"trainer": {"max_epochs": 3, "batch_size": 128}}


def tiny(**overrides):
    return make_params(**deep_merge(TINY_MULTITASK, overrides))


def small_task(labels: list, columns: dict | None = None) -> TaskData:
    """A toy prepared task: every split holds each of ``labels`` once."""
    classes = np.array(sorted(set(labels)))
    y = np.searchsorted(classes, labels)
    split = {s: y.copy() for s in ("train", "val", "test")}
    cols = {name: {s: np.asarray(v) for s in split} for name, v in (columns or {}).items()}
    return TaskData(
        X={s: np.zeros((len(y), 4), np.float32) for s in split},
        y=split,
        ids={s: np.arange(len(y)) for s in split},
        classes=classes,
        columns=cols,
    )


# --- task definitions -------------------------------------------------------------------------


def test_derived_labels_from_the_digit():
    data = small_task([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    parity = derive_task_labels(data, TaskSpec(name="parity", label="parity"), "toy")
    large = derive_task_labels(data, TaskSpec(name="large", label="threshold", threshold=5), "toy")
    digit = derive_task_labels(data, TaskSpec(name="digit", label="class"), "toy")
    assert list(parity.classes) == ["even", "odd"] and parity.y["train"].tolist() == [0, 1] * 5
    assert list(large.classes) == ["< 5", ">= 5"] and large.y["test"].tolist() == [0] * 5 + [1] * 5
    assert digit.num_classes == 10 and digit.y["val"].tolist() == list(range(10))


def test_a_label_column_becomes_a_task():
    data = small_task([0, 1, 2, 3], columns={"colour": ["red", "blue", "red", "green"]})
    colour = derive_task_labels(data, TaskSpec(name="colour", label="column", column="colour"), "toy")
    assert list(colour.classes) == ["blue", "green", "red"] and colour.y["train"].tolist() == [2, 0, 2, 1]


def test_a_missing_label_column_is_named():
    data = small_task([0, 1, 2, 3], columns={"colour": ["red", "blue", "red", "green"]})
    with pytest.raises(DataError) as err:
        derive_task_labels(data, TaskSpec(name="size", label="column", column="size"), "full.npz")
    message = str(err.value)
    assert "full.npz: multitask task 'size' reads label column 'size'" in message and "it holds: colour" in message


def test_a_task_column_not_declared_in_data_is_refused_by_the_params():
    with pytest.raises(ConfigError) as err:
        make_params(
            multitask={
                "tasks": [{"name": "digit", "label": "class"}, {"name": "size", "label": "column", "column": "size"}]
            }
        )
    assert (
        "multitask.tasks[1].column = 'size' (task 'size'): not a declared label column; data.task_columns is []"
        in str(err.value)
    )


@pytest.mark.parametrize(
    "spec, labels, problem",
    [
        (
            TaskSpec(name="huge", label="threshold", threshold=100),
            [0, 1, 2],
            "multitask task 'huge' (label >= 100) gives 1 class ('< 100'); a task needs at least 2",
        ),
        (
            TaskSpec(name="parity", label="parity"),
            [0, 2, 4],
            "multitask task 'parity' (label 'parity') gives 1 class ('even')",
        ),
        (
            TaskSpec(name="parity", label="parity"),
            ["cat", "dog"],
            "multitask task 'parity' (label 'parity') needs integer class labels; the dataset's labels are 'cat', "
            "'dog'",
        ),
    ],
)
def test_a_task_with_fewer_than_two_classes_or_impossible_labels_fails_clearly(spec, labels, problem):
    with pytest.raises(DataError) as err:
        derive_task_labels(small_task(labels), spec, "full.npz")
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_a_constant_label_column_fails_clearly():
    data = small_task([0, 1, 2], columns={"site": [7, 7, 7]})
    with pytest.raises(
        DataError, match="multitask task 'site' \\(column 'site'\\) gives 1 class \\(7\\); a task needs at least 2"
    ):
        derive_task_labels(data, TaskSpec(name="site", label="column", column="site"), "full.npz")


def test_one_task_is_not_multi_task():
    with pytest.raises(ConfigError, match="multitask.tasks = .*multi-task learning needs at least 2 tasks, got 1"):
        make_params(multitask={"tasks": [{"name": "digit", "label": "class"}]})


# --- the network and its losses ---------------------------------------------------------------

BRANCHES = [Branch("digit", (), 10), Branch("parity", (8,), 2)]


def tiny_module(weighting) -> MultiTaskModule:
    torch.manual_seed(0)
    net = build_multitask_net(ModelConfig(hidden_sizes=[16], dropout=0.0), (1, 8, 8), BRANCHES)
    return MultiTaskModule(net, BRANCHES, weighting, [1.0, 1.0], TrainerConfig(lr=0.05))


def batch(n: int = 32):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 8, 8, generator=generator)
    y = torch.stack(
        [torch.randint(0, 10, (n,), generator=generator), torch.randint(0, 2, (n,), generator=generator)], dim=1
    )
    return x, y


def test_the_shared_body_gets_gradients_from_every_task_loss():
    module = tiny_module(FixedWeighting([1.0, 1.0]))
    x, y = batch()
    for i, task in enumerate(module.tasks):
        module.zero_grad(set_to_none=True)
        module.task_losses(module(x), y)[i].backward()
        body = {name: p.grad for name, p in module.net.body.named_parameters()}
        assert all(g is not None and g.abs().sum() > 0 for g in body.values()), task
        other = next(t for t in module.tasks if t != task)
        assert all(p.grad is None or not p.grad.any() for p in module.net.heads[other].parameters()), (
            f"{task}'s loss moved {other}'s branch"
        )


def test_uncertainty_weights_move_during_training_and_fixed_ones_do_not():
    for weighting, should_move in ((UncertaintyWeighting([1.0, 0.5]), True), (FixedWeighting([1.0, 0.5]), False)):
        module = tiny_module(weighting)
        before = weighting.weights()
        assert torch.allclose(before, torch.tensor([1.0, 0.5]))  # uncertainty starts from the declared weights
        optimizer = module.configure_optimizers()
        x, y = batch()
        for _ in range(20):
            optimizer.zero_grad()
            weighting(module.task_losses(module(x), y)).backward()
            optimizer.step()
        moved = not torch.allclose(weighting.weights(), before)
        assert moved == should_move, type(weighting).__name__


def test_multitask_uses_at_most_60_percent_of_the_separate_models_parameters_on_the_default_tasks():
    """The acceptance bound, on the default backbone and the default digit and parity tasks."""
    cfg, shape = ModelConfig(), (1, 8, 8)
    shared = build_multitask_net(cfg, shape, [Branch("digit", (), 10), Branch("parity", (), 2)])
    separate = [build_classifier(cfg, shape, 10), build_classifier(cfg, shape, 2)]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(shared) <= 0.6 * sum(count(m) for m in separate)


def test_a_task_name_torch_reserves_is_refused():
    with pytest.raises(ConfigError, match="multitask task name\\(s\\) values: reserved"):
        build_multitask_net(ModelConfig(), (1, 8, 8), [Branch("values", (), 2), Branch("digit", (), 10)])


# --- the stage --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Prepared digits and a tiny pretrained base, shared by the module; each test writes its own outputs."""
    with pretrained_workspace(tmp_path_factory.mktemp("multitask"), tiny()) as root:
        yield root


def run(params, root, name: str):
    return run_multitask(params, stage_paths("multitask", root, name))


def test_stage_logs_separate_runs_and_the_multitask_run_with_its_comparison(prepared):
    params = tiny(
        multitask={
            "tasks": [
                {"name": "digit", "label": "class"},
                {"name": "parity", "label": "parity", "tower": [8]},
                {"name": "large", "label": "threshold", "threshold": 5},
            ]
        }
    )
    runs = run(params, prepared, "three")
    assert list(runs) == ["single_task/digit", "single_task/parity", "single_task/large", "multitask"]
    client = MlflowClient()
    for variant, entry in runs.items():
        logged = client.get_run(entry["run_id"])
        assert set(CONTRACT) <= set(logged.data.metrics), variant
        paradigm = "multitask" if variant == "multitask" else "single_task"
        assert (logged.data.tags["stage"], logged.data.tags["paradigm"], logged.data.tags["variant"]) == (
            "multitask",
            paradigm,
            variant,
        )
    shared = runs["multitask"]
    for task in ("digit", "parity", "large"):
        assert 0 <= shared[f"test/{task}/acc"] <= 1 and 0 <= shared[f"test/{task}/f1_macro"] <= 1
        alone = runs[f"single_task/{task}"]
        assert shared[f"compare/{task}/acc_delta_vs_separate"] == pytest.approx(
            shared[f"test/{task}/acc"] - alone[f"test/{task}/acc"]
        )
    assert shared["test/acc"] == pytest.approx(np.mean([shared[f"test/{t}/acc"] for t in ("digit", "parity", "large")]))
    separate_params = sum(runs[f"single_task/{t}"]["params/total"] for t in ("digit", "parity", "large"))
    assert shared["compare/params_ratio_vs_separate"] == pytest.approx(shared["params/total"] / separate_params)
    assert "compare/fit_time_ratio_vs_separate" in shared and "compare/estimated_memory_ratio_vs_separate" in shared
    metrics = client.get_run(shared["run_id"]).data.metrics
    assert metrics["compare/params_ratio_vs_separate"] == pytest.approx(shared["compare/params_ratio_vs_separate"])
    artifacts = {a.path for a in client.list_artifacts(shared["run_id"], "plots")}
    assert {"plots/confusion_matrix_digit.png", "plots/multitask_vs_separate.png"} <= artifacts


def test_loss_weights_are_logged_every_epoch_and_the_model_reloads(prepared):
    params = tiny(multitask={"weighting": "uncertainty"})
    runs = run(params, prepared, "weights")
    history = MlflowClient().get_metric_history(runs["multitask"]["run_id"], "loss_weight/parity")
    assert [m.step for m in history] == [1, 2, 3]
    assert len({m.value for m in history}) > 1  # learned: they move from epoch to epoch
    plotted = pd.read_csv(prepared / "weights" / "plots" / "loss_weights.csv")
    assert sorted(plotted["task"].unique()) == ["label", "parity"] and len(plotted) == 6
    for name in ("history", "tasks", "cost"):
        assert (prepared / "weights" / "plots" / f"{name}.csv").is_file()
    net, payload = load_multitask(prepared / "weights" / "models" / "multitask.pt", params.model)
    assert [t["name"] for t in payload["tasks"]] == ["label", "parity"] and payload["tasks"][1]["classes"] == [
        "even",
        "odd",
    ]
    data = load_task(stage_paths("multitask", prepared).prepared("full"))
    with torch.no_grad():
        logits = net.eval()(torch.from_numpy(data.X["test"]))
    parity = (logits["parity"].argmax(1).numpy() == data.classes[data.y["test"]] % 2).mean()
    assert parity == pytest.approx(runs["multitask"]["test/parity/acc"], abs=1e-6)


def test_init_from_base_starts_every_body_from_the_pretrained_one(prepared):
    params = tiny(multitask={"init_from_base": True}, trainer={"max_epochs": 1, "lr": 1e-9})
    runs = run(params, prepared, "from_base")
    base, _ = load_classifier(prepared / "models" / "pretrain" / "base.pt", params.model)
    for name in ("multitask", "single_task-label"):
        net, _ = load_multitask(prepared / "from_base" / "models" / f"{name}.pt", params.model)
        trained, pretrained = net.body.state_dict(), base.body.state_dict()
        weights = [k for k in pretrained if k.endswith("weight")]
        assert all(torch.allclose(trained[k], pretrained[k], atol=1e-6) for k in weights), name
    assert MlflowClient().get_run(runs["multitask"]["run_id"]).data.tags["init"] == "pretrained base"


def test_full_test_split_holds_nothing_the_base_learned_from():
    prepared = prepare_data(make_params())
    seen = np.concatenate([prepared.source.ids["train"], prepared.source.ids["val"]])
    assert not np.isin(prepared.full.ids["test"], seen).any()
    assert len(prepared.full.ids["test"]) == pytest.approx(0.2 * len(prepared.dataset.y), rel=0.02)


# --- tasks that follow the data, and tasks that repeat another --------------------------------


def test_the_default_tasks_are_the_class_under_the_label_columns_name_and_its_parity_for_integer_classes():
    digits = small_task(list(range(10)))
    assert [(t.name, t.label) for t in default_tasks(digits, "label")] == [("label", "class"), ("parity", "parity")]
    assert [t.name for t in default_tasks(digits, "my label")] == ["class", "parity"]  # no task name: 'class'
    words = small_task(["cat", "dog", "owl"])
    assert [(t.name, t.label) for t in default_tasks(words, "species")] == [("species", "class")]


def test_on_binary_data_parity_is_the_class_so_it_is_left_out_and_the_stage_has_nothing_to_compare(capsys):
    binary = small_task([0, 1, 1, 0, 1])
    specs = default_tasks(binary, "label")
    labels = [derive_task_labels(binary, spec, "full.npz") for spec in specs]
    kept, _, notes = distinct_tasks(specs, labels, "full.npz")
    assert [t.name for t in kept] == ["label"]
    assert notes == [
        "full.npz: multitask task 'parity' (label 'parity') splits the examples exactly as task 'label' does "
        "(2 classes, one for one): left out, a second head on the same labels compares nothing"
    ]
    with pytest.raises(
        NothingToCompare,
        match=r"default tasks \(label, parity\) give one distinct task on full.npz \('label', 2 classes\)",
    ):
        tasks_to_compare(tiny(), binary, "full.npz")
    assert "warning: full.npz: multitask task 'parity'" in capsys.readouterr().err
    # given tasks are held to it too: a threshold that splits two classes as the class does is left out
    given = tiny(
        multitask={"tasks": [{"name": "y", "label": "class"}, {"name": "big", "label": "threshold", "threshold": 1}]}
    )
    with pytest.raises(NothingToCompare, match=r"multitask.tasks \(y, big\) give one distinct task"):
        tasks_to_compare(given, binary, "full.npz")


def test_tasks_that_split_the_examples_differently_are_all_kept():
    three = small_task([0, 1, 2, 0, 1, 2])  # parity groups 0 and 2: another split than the class
    specs, labels = tasks_to_compare(tiny(), three, "full.npz")
    assert [t.name for t in specs] == ["label", "parity"] and [t.num_classes for t in labels] == [3, 2]


def test_a_stage_with_nothing_to_compare_says_why_in_its_outputs_and_the_report(tmp_path):
    paths = StagePaths.of("multitask", tmp_path)
    why = "multitask: the default tasks give one distinct task on full.npz ('label', 2 classes), so ..."
    write_nothing_to_compare(why, paths)
    write_stage_metrics("multitask", {}, tmp_path / "metrics", skipped=why)
    assert (paths.models / NOTHING_FILE).read_text().strip() == why
    assert list(pd.read_csv(paths.plots / "tasks.csv").columns) == [
        "model",
        "task",
        "approach",
        "test/acc",
        "test/f1_macro",
    ]
    listed, skipped = listed_runs(tmp_path / "metrics", ("multitask",))
    assert (listed, skipped) == ([], {"multitask": why})
    empty = pd.DataFrame(columns=["stage", "paradigm", "label", "variant", "run_ids"])
    section = compare_with_separate_models(Results(empty, empty, lambda runs, key: empty, skipped=skipped))
    assert section.text == f"No multi-task comparison: {why}." and section.champion is None
