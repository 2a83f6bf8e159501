"""A user's own data handled right: scaling fitted on training inputs only, domain-shift noise measured
against the data's spread, trivial baselines, and the warning when a task's results mean nothing."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.prepare import noise_note, prepare_data, write_prepared
from pipeline.data.prepared import load_task
from pipeline.data.scaling import Scaling
from pipeline.data.sources import load_dataset
from pipeline.paradigms.sanity import TAG, check_results, judge
from pipeline.paradigms.scratch import PARADIGM as SCRATCH
from pipeline.paradigms.scratch.run import run_scratch
from tests.conftest import make_params, stage_paths


def signed_signals(path, n: int = 1500, length: int = 24, classes: int = 10, seed: int = 0):
    """Short signed 1-D signals as a user's benchmark has them: each class a noisy sinusoid of its own
    frequency and phase, with heavy-tailed noise, so that after ``scale: max`` they lie in [-1, 1] with a
    standard deviation under 0.2."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    t = np.linspace(0, 1, length)
    prototypes = np.stack([np.sin(2 * np.pi * (1 + c % 5) * t + c * np.pi / 5) for c in range(classes)])
    X = prototypes[y] + 0.5 * rng.standard_t(3, size=(n, length))
    np.savez(path, X=X.astype(np.float32), y=y)
    return path


@pytest.fixture
def signals(tmp_path):
    return signed_signals(tmp_path / "signals.npz")


def test_default_noise_on_signed_signals_draws_the_warning_and_relative_noise_keeps_the_task(signals):
    absolute = prepare_data(make_params(data={"source": "npz", "path": str(signals)}))
    assert absolute.source.X["train"].std() < 0.2 and np.abs(absolute.source.X["train"]).max() <= 1.0
    (note,) = absolute.target.notes
    assert "prepare.noise_std = 0.3" in note and "noise_unit: source_std" in note

    data = {"source": "npz", "path": str(signals)}
    relative = prepare_data(make_params(data=data, prepare={"noise_unit": "source_std", "noise_std": 0.5}))
    assert relative.target.notes == ()
    # buried under 0.3 absolute, the target task's logistic baseline nears chance; at 0.5 source stds it is learnable
    assert relative.target.baselines["logistic"] > absolute.target.baselines["logistic"] + 0.15
    assert relative.target.baselines["logistic"] > 3 * relative.target.baselines["chance"]
    # the noise is each feature's spread on the source training inputs, times noise_std
    noise = relative.target.X["test"] - relative.dataset.X[relative.target.ids["test"]]
    assert noise.std() == pytest.approx(0.5 * relative.source.X["train"].std(axis=0).mean(), rel=0.1)


def test_no_warning_and_clear_baselines_on_the_bundled_digits():
    prepared = prepare_data(make_params())
    assert all(not task.notes for task in (prepared.source, prepared.target, prepared.full))
    assert prepared.source.baselines["logistic"] > 0.9 and prepared.source.baselines["majority"] < 0.15
    assert prepared.target.baselines["chance"] == pytest.approx(0.1)
    assert noise_note(make_params().prepare, spread=0.376, scale="max") is None  # digits: 0.3 vs a spread of 0.38


def test_standard_scaling_comes_from_the_source_training_split_and_is_saved_for_inference(signals, tmp_path):
    params = make_params(data={"source": "npz", "path": str(signals), "scale": "standard"})
    prepared = prepare_data(params)
    write_prepared(prepared, tmp_path / "prepared")
    raw = load_dataset(params.data).X
    source_train = raw[prepared.source.ids["train"]]
    scaling = Scaling.load(tmp_path / "prepared" / "scaling.npz")
    assert scaling.method == "standard"
    np.testing.assert_allclose(scaling.shift, source_train.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaling.divisor, source_train.std(axis=0), rtol=1e-5)
    full = load_task(tmp_path / "prepared" / "full.npz")
    for split in ("train", "val", "test"):  # every split, of every task, scaled alike
        np.testing.assert_allclose(full.X[split], scaling.apply(raw[full.ids[split]]), atol=1e-6)
    scaled = prepared.source.X["train"]
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-4)


def test_max_scaling_keeps_digits_in_the_unit_range():
    prepared = prepare_data(make_params())
    assert load_dataset(make_params().data).X.max() == 16.0  # loaded as is; prepare scales
    assert prepared.source.X["train"].min() == 0.0 and prepared.source.X["train"].max() == 1.0
    assert prepared.scaling.method == "max" and float(prepared.scaling.divisor) == 16.0


@pytest.mark.parametrize(
    ("best", "judged", "words"),
    [
        (0.13, ("chance", "majority", "logistic"), "within a few points of majority"),
        (0.60, ("chance", "majority", "logistic"), "below a logistic regression"),
        (0.60, ("chance", "majority"), None),  # active learning: not held to the logistic regression
        (0.82, ("chance", "majority", "logistic"), None),
    ],
)
def test_judge_names_what_a_result_fails_to_clear(best, judged, words):
    baselines = {"chance": 0.1, "majority": 0.11, "logistic": 0.8, "test_examples": 500}
    verdict = judge(baselines, best, judged)
    assert verdict is None if words is None else words in verdict


def test_a_stage_on_a_buried_target_task_warns_once_and_tags_its_runs(signals, tracking_dir, capsys):
    import mlflow

    params = make_params(data={"source": "npz", "path": str(signals)}, trainer={"max_epochs": 2})
    write_prepared(prepare_data(params), tracking_dir / "data" / "prepared")
    runs = run_scratch(params, stage_paths("scratch", tracking_dir))
    warning = check_results(SCRATCH, runs, params, tracking_dir / "data" / "prepared")
    assert warning is not None and "prepare.noise_std = 0.3" in warning
    assert capsys.readouterr().err.count("warning:") == 1
    (run_id,) = [entry["run_id"] for entry in runs.values()]
    assert mlflow.MlflowClient().get_run(run_id).data.tags[TAG] == warning


@pytest.mark.parametrize(
    ("update", "line"),
    [
        ({"data": {"scale": "zscore"}}, "data.scale = 'zscore': must be 'max', 'standard' or 'none'"),
        ({"prepare": {"noise_unit": "std"}}, "prepare.noise_unit = 'std': must be 'absolute' or 'source_std'"),
    ],
)
def test_a_wrong_scale_or_noise_unit_is_one_line_naming_key_value_and_choices(update, line):
    from pipeline.errors import ConfigError
    from pipeline.params import parse_params

    with pytest.raises(ConfigError) as info:
        parse_params(update)
    assert line in str(info.value) and "\n" not in str(info.value)
