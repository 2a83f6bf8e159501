"""params.yaml schema: every user error is one line naming the key, the value and what is allowed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipeline.config.schema import MAX_SEED, StageSection, TrainerConfig, TrainerOverrides
from pipeline.errors import ConfigError
from pipeline.paradigms import paradigms
from pipeline.params import Params, load_params, parse_params
from tests.conftest import PROJECT_ROOT


def error_for(update: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_params(update)
    return str(info.value)


def test_project_params_are_valid():
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params.trainer.optimizer in ("sgd", "adam", "adamw")
    assert params.prepare.shots_per_class == 10


def test_typo_names_the_key_the_value_and_the_allowed_keys():
    message = error_for({"trainer": {"lrr": 0.1}})
    assert "unknown key 'trainer.lrr'" in message
    assert "0.1" in message
    assert "lr" in message.split("allowed in trainer:")[1]


def test_typo_in_a_stage_override_names_the_full_key():
    message = error_for({"pretrain": {"trainer": {"max_epoch": 5}}})
    assert "unknown key 'pretrain.trainer.max_epoch'" in message


def test_wrong_type_names_the_key_and_value():
    message = error_for({"trainer": {"max_epochs": "ten"}})
    assert message.startswith("params: trainer.max_epochs = 'ten': must be a valid integer")


def test_out_of_range_value_says_what_is_allowed():
    message = error_for({"trainer": {"lr": -0.5}})
    assert message == "params: trainer.lr = -0.5: must be greater than 0"


def test_choice_lists_the_allowed_values():
    message = error_for({"trainer": {"optimizer": "rmsprop"}})
    assert "trainer.optimizer = 'rmsprop': must be 'sgd', 'adam' or 'adamw'" in message


def test_yaml_scientific_notation_is_read_as_a_number():
    # PyYAML reads `1e-3` as text; the schema still takes it as the float it means.
    assert parse_params({"trainer": {"lr": "1e-3"}}).trainer.lr == pytest.approx(1e-3)


def test_stage_overrides_apply_only_to_that_stage():
    params = parse_params({"trainer": {"lr": 0.01}, "pretrain": {"trainer": {"lr": 0.5, "precision": 32}}})
    assert params.trainer_for("pretrain").lr == 0.5
    assert params.trainer_for("pretrain").precision == "32"
    assert params.trainer.lr == 0.01


def test_overrides_have_exactly_the_trainer_keys_and_refuse_what_the_trainer_refuses():
    assert set(TrainerOverrides.model_fields) == set(TrainerConfig.model_fields)

    def accepts(model, key, value) -> bool:
        try:
            model(**{key: value})
        except ValueError:
            return False
        return True

    for key in TrainerConfig.model_fields:  # derived from the trainer schema: every type and bound carries over
        assert TrainerOverrides().model_dump()[key] is None
        for value in (-1, 0, 0.5, 1, 11, 32, "32", "ten", [0], "auto", "ddp", True):
            assert accepts(TrainerConfig, key, value) == accepts(TrainerOverrides, key, value), (key, value)


def test_unsafe_yaml_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


@pytest.mark.parametrize(
    "bad, key",
    [
        ("trainer:\n  lrr: 0.1\n", "trainer.lrr"),
        ("trainer:\n  batch_size: many\n", "trainer.batch_size"),
        ("prepare:\n  shots_per_class: 0\n", "prepare.shots_per_class"),
        ("trainer:\n  devices: 0\n", "trainer.devices = 0"),
        ("seed: 1\nseed: 2\n", "params.yaml: key 'seed' is given twice (lines 1 and 2)"),
        ("# all commented out\n", "params.yaml: empty; restore it with `git checkout params.yaml`"),
    ],
)
def test_stage_exits_2_with_one_line_and_no_traceback(tmp_path, bad, key):
    (tmp_path / "params.yaml").write_text(bad)
    result = subprocess.run(
        [sys.executable, "-m", "stages.prepare"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_every_paradigm_section_has_trainer_overrides_and_a_stage_script():
    for entry in paradigms():
        assert issubclass(entry.config, StageSection) and Params.model_fields[entry.stage].annotation is entry.config
        assert entry.config.model_fields["trainer"].annotation is TrainerOverrides
        assert (PROJECT_ROOT / "stages" / f"{entry.stage}.py").is_file()


def test_the_gpu_profile_names_keys_params_yaml_has_and_makes_valid_params():
    from pipeline.profile import profile_values

    values = profile_values(PROJECT_ROOT / "params-gpu.yaml", PROJECT_ROOT / "params.yaml")
    assert values["model.backbone"] == "resnet" and values["data.source"] == "torchvision"


def test_a_profile_is_checked_then_applied_keeping_comments(tmp_path):
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "pipeline.profile", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (tmp_path / "typo.yaml").write_text("trainer:\n  max_epoch: 3\n")
    (tmp_path / "bad.yaml").write_text("trainer:\n  batch_size: 0\n")
    for profile, problem in (
        ("typo.yaml", "unknown key 'trainer.max_epoch' (value 3); allowed in trainer: max_epochs, "),
        ("bad.yaml", "trainer.batch_size"),
    ):
        result = run(profile)
        assert result.returncode == 2 and problem in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )

    wide = "model:\n  channels: [8, 16, 32]\ntrainer:\n  batch_size: 128\nfinetune:\n  trainer:\n    lr: 0.01\n"
    (tmp_path / "wide.yaml").write_text(wide)
    shown = run("wide.yaml")
    assert shown.stdout.strip() == (  # finetune.trainer.lr: a key params.yaml lacks, added
        "dvc exp run -S 'model.channels=[8, 16, 32]' -S trainer.batch_size=128 -S +finetune.trainer.lr=0.01"
    )
    applied = run("wide.yaml", "--apply")
    assert applied.stdout.startswith("params.yaml: 3 values from wide.yaml written"), applied.stdout + applied.stderr
    text = (tmp_path / "params.yaml").read_text()
    assert "  channels: [8, 16, 32]" in text and "# cnn: one conv layer per entry" in text
    params = load_params(tmp_path / "params.yaml")
    assert params.model.channels == [8, 16, 32] and params.trainer.batch_size == 128
    assert params.trainer_for("finetune").lr == 0.01
    (tmp_path / "one.yaml").write_text("seed: 7\n")
    assert run("one.yaml", "--apply").stdout.startswith("params.yaml: 1 value from one.yaml written")


DEVICES = "must be 'auto', a count of at least 1, or a non-empty list of device ids (each 0 or more)"


@pytest.mark.parametrize("devices", [0, -1, [], [0, -1]])
@pytest.mark.parametrize("where", ["trainer", "finetune.trainer"])
def test_devices_lightning_cannot_use_are_refused_in_the_trainer_and_its_overrides(where, devices):
    section, _, sub = where.partition(".")
    update = {section: {sub: {"devices": devices}}} if sub else {section: {"devices": devices}}
    assert error_for(update) == f"params: {where}.devices = {devices}: {DEVICES}"


@pytest.mark.parametrize("devices", ["auto", 1, 4, [0], [1, 3]])
def test_usable_devices_are_kept(devices):
    assert parse_params({"trainer": {"devices": devices}}).trainer.devices == devices


def test_seeds_stay_where_every_seed_derived_from_them_fits_numpy():
    assert error_for({"seed": 99999999999999999999999}) == (
        f"params: seed = 99999999999999999999999: must be less than or equal to {MAX_SEED}"
    )
    assert error_for({"seed": MAX_SEED, "repeats": 3}) == (
        f"params: seed = {MAX_SEED} with repeats = 3: the last run's seed, seed + repeats - 1 = {MAX_SEED + 2}, "
        f"must be at most {MAX_SEED}; lower seed or repeats"
    )
    params = parse_params({"seed": MAX_SEED - 2, "repeats": 3})
    # the last repeat's seed plus the largest Linux process id (a sweep's extra workers add theirs)
    np.random.RandomState(params.seed + params.repeats - 1 + 2**22)


@pytest.mark.parametrize(
    "update, key, shown",
    [
        ({"prepare": {"noise_std": float("inf")}}, "prepare.noise_std", "inf"),
        ({"data": {"val_fraction": float("nan")}}, "data.val_fraction", "nan"),
        ({"pretrain": {"trainer": {"weight_decay": float("inf")}}}, "pretrain.trainer.weight_decay", "inf"),
        ({"federated": {"fedprox": {"mu": float("inf")}}}, "federated.fedprox.mu", "inf"),
        (
            {"multitask": {"tasks": [{"name": "t", "label": "class", "weight": -float("inf")}]}},
            "multitask.tasks[0].weight",
            "-inf",
        ),
        (
            {"sweep": {"scratch": {"space": {"trainer.lr": {"type": "float", "low": 0.1, "high": float("inf")}}}}},
            "sweep.scratch.space.trainer.lr.high",
            "inf",
        ),
        ({"trainer": {"max_epochs": float("inf")}}, "trainer.max_epochs", "inf"),
    ],
)
def test_infinite_and_nan_numbers_are_refused_wherever_a_number_goes(update, key, shown):
    assert error_for(update) == f"params: {key} = {shown}: must be a finite number"


def test_yaml_inf_and_nan_in_a_params_file_are_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("prepare:\n  noise_std: .inf\n  source_fraction: .nan\n")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert sorted(str(info.value).splitlines()) == [  # one line per problem
        f"{path}: prepare.noise_std = inf: must be a finite number",
        f"{path}: prepare.source_fraction = nan: must be a finite number",
    ]
