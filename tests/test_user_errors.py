"""Every user-error path gives one clear line naming what is wrong (the rest are in test_config/test_data_sources)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config.loading import read_yaml
from pipeline.config.schema import DataConfig, ModelConfig
from pipeline.data.prepare import prepare_data
from pipeline.data.prepared import load_task
from pipeline.data.sources import load_dataset
from pipeline.data.splits import partition_dirichlet, partition_iid
from pipeline.errors import ConfigError, DataError
from pipeline.io import write_npz
from pipeline.models.checkpoint import load_classifier
from pipeline.models.classifier import build_classifier
from pipeline.params import load_params, parse_params
from pipeline.seeding import rng_for
from tests.conftest import make_params


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_cnn_on_tabular_data_says_to_use_mlp():
    with pytest.raises(ConfigError) as err:
        build_classifier(ModelConfig(backbone="cnn"), (64,), 10)
    assert "model.backbone = 'cnn': needs image inputs" in one_line(err) and "(64,)" in str(err.value)


@pytest.mark.parametrize(
    "source_classes, problem",
    [([0, 1, 42], "[42] not among the dataset's classes"), ([0], "source and target each need at least 2")],
)
def test_bad_source_classes(source_classes, problem):
    with pytest.raises(ConfigError) as err:
        prepare_data(make_params(prepare={"target_kind": "new_classes", "source_classes": source_classes}))
    assert one_line(err).startswith(f"prepare.source_classes = {source_classes}:") and problem in str(err.value)


def test_active_learning_seed_larger_than_the_training_split():
    with pytest.raises(ConfigError) as err:
        prepare_data(make_params(prepare={"active_learning": {"initial_labelled": 5000}}))
    assert "prepare.active_learning.initial_labelled = 5000: must be smaller than the" in one_line(err)


def test_more_clients_than_examples():
    with pytest.raises(DataError) as err:
        partition_iid(5, 10, rng_for(0, "t"))
    assert one_line(err) == "5 training examples cannot be shared among 10 clients"


def test_impossible_dirichlet_partition_says_which_params_to_change():
    y = np.repeat(np.arange(2), 10)
    with pytest.raises(DataError) as err:
        partition_dirichlet(y, 10, 0.01, 5, rng_for(0, "t"), max_tries=20)
    assert "lower prepare.federated.num_clients or min_samples_per_client" in one_line(err)


@pytest.mark.parametrize(
    "frame, problem",
    [
        (pd.DataFrame({"label": [0, 1]}), "no feature columns besides the label column 'label'"),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0], "label": [0, None, 1]}), "label column 'label' has 1 empty value(s)"),
    ],
)
def test_csv_without_features_or_with_empty_labels(tmp_path, frame, problem):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source="csv", path=path))
    assert one_line(err) == f"{path}: {problem}"


@pytest.mark.parametrize(
    "X, problem",
    [
        (np.zeros(4), "X must have one row per example"),
        (np.zeros((4, 1, 1, 1, 1)), "X has 5 dimensions"),
        (np.array([["a"], ["b"], ["c"], ["d"]]), "X must be numeric"),
    ],
)
def test_npz_inputs_of_the_wrong_shape_or_kind(tmp_path, X, problem):
    path = tmp_path / "bad.npz"
    np.savez(path, X=X, y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source="npz", path=path))
    assert one_line(err).startswith(f"{path}: {problem}")


def test_prepared_file_of_another_kind(tmp_path):
    path = tmp_path / "source.npz"
    write_npz(path, X=np.zeros(3))
    with pytest.raises(DataError) as err:
        load_task(path)
    assert one_line(err).startswith(f"{path}: not a prepared task file (missing classes")


@pytest.mark.parametrize(
    "payload, problem",
    [
        (b"not a checkpoint", "not a readable checkpoint"),
        ({"weights": 1}, "not a paradigm-lab/classifier-v1 checkpoint"),
    ],
)
def test_file_that_is_not_our_checkpoint(tmp_path, payload, problem):
    path = tmp_path / "base.pt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    with pytest.raises(DataError) as err:
        load_classifier(path, ModelConfig())
    assert one_line(err).startswith(f"{path}: {problem}")


def test_params_file_missing_or_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")
    (tmp_path / "params.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "params.yaml")
    assert one_line(err) == f"{tmp_path / 'params.yaml'}: expected a mapping of sections at the top level, got list"
    with pytest.raises(ConfigError, match="data.source 'csv' needs data.path"):
        parse_params({"data": {"source": "csv"}})


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "",
            "empty; restore it with `git checkout {path}`, or write in it the sections to change (the rest keep "
            "their defaults)",
        ),
        ("# every line a comment\n", "empty; restore it with `git checkout {path}`"),
        (
            "seed: 1\ntrainer:\n  max_epochs: 3\n  lr: 0.1\n  max_epochs: 5\n",
            "key 'trainer.max_epochs' is given twice (lines 3 and 5)",
        ),
        ("seed: 1\nrepeats: 2\nseed: 2\n", "key 'seed' is given twice (lines 1 and 3)"),
        (
            "multitask:\n  tasks:\n    - {name: a, label: class}\n    - name: b\n      label: parity\n      name: c\n",
            "key 'multitask.tasks[1].name' is given twice (lines 4 and 6)",
        ),
        ("seed: 7\n# caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 13); save it as UTF-8"),
    ],
    ids=["empty", "only-comments", "repeated-key", "repeated-top-level-key", "repeated-key-in-a-list", "latin-1"],
)
def test_params_file_empty_repeating_a_key_or_not_utf8(tmp_path, text, problem):
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert one_line(err).startswith(f"{path}: {problem.format(path=path)}")


def test_a_profile_or_params_tree_may_still_be_empty_and_anchors_still_work(tmp_path):
    """Only the params a run loads must not be empty; reading YAML stays safe and keeps aliases and merges."""
    (tmp_path / "empty.yaml").write_text("# nothing to change\n")
    assert read_yaml(tmp_path / "empty.yaml") == {}
    (tmp_path / "params.yaml").write_text("base: &lr {lr: 0.1}\ntrainer:\n  <<: *lr\n  lr: 0.2\n")
    assert read_yaml(tmp_path / "params.yaml")["trainer"] == {"lr": 0.2}


@pytest.mark.parametrize(
    "stage, params_text, problem",
    [
        ("finetune", "seed: 42\n", "data/prepared/target.npz: prepared data not found; run `dvc repro prepare` first"),
        ("transfer", "transfer:\n  replace_layers: 3\n", "transfer.replace_layers = 3: the mlp backbone has 3 layers"),
        ("multitask", "seed: 42\n", "data/prepared/full.npz: prepared data not found; run `dvc repro prepare` first"),
        (
            "multitask",
            "multitask:\n  tasks: [{name: digit, label: class}, {name: big, label: threshold}]\n",
            "multitask.tasks[1]: task 'big': label 'threshold' needs threshold (e.g. 5: labels >= 5 are class 1)",
        ),
    ],
)
def test_target_stage_exits_2_with_one_line(tmp_path, stage, params_text, problem):
    (tmp_path / "params.yaml").write_text(params_text)
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert problem in lines[0]
    assert not (tmp_path / "models").exists()


def test_mutation_scores_before_any_mutation_run_say_to_run_it_first(tmp_path):
    """``python -m benchmarks.mutation --no-run`` reads mutmut's results; with none yet it says so in one line."""
    from benchmarks.mutation import results

    with pytest.raises(SystemExit) as err:
        results("pipeline/data/splits.py", root=tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'mutants' / 'pipeline/data/splits.py.meta'}: no mutation results for pipeline/data/splits.py; "
        "run `make mutation` first"
    )
