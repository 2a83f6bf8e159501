"""Pretrain end to end on a tiny config, read back from a real MLflow store."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.data.prepared import load_task
from pipeline.errors import ConfigError, DataError
from pipeline.models.checkpoint import load_classifier
from pipeline.paradigms.pretrain.run import run_pretrain
from pipeline.paths import StagePaths
from pipeline.tracking.contract import CONTRACT_METRICS as CONTRACT
from tests.conftest import make_params


@pytest.fixture
def pretrained(tracking_dir):
    params = make_params()
    write_prepared(prepare_data(params), StagePaths.of("prepare", tracking_dir).data)
    runs = run_pretrain(params, StagePaths.of("pretrain", tracking_dir))
    return params, runs, tracking_dir


def test_run_is_tracked_with_contract_metrics_tags_and_artifacts(pretrained):
    params, runs, root = pretrained
    run = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(runs["base"]["run_id"])
    assert run.info.status == "FINISHED"
    assert set(CONTRACT) <= set(run.data.metrics)
    tags = run.data.tags
    assert (tags["stage"], tags["paradigm"], tags["variant"]) == ("pretrain", "pretrain", "base")
    assert tags["git_commit"] and len(tags["params_hash"]) == 12
    assert run.data.params["trainer.max_epochs"] == "3" and run.data.params["seed"] == "42"
    assert run.data.metrics["params/trainable"] == run.data.metrics["params/total"] > 0
    assert run.data.metrics["model/size_bytes"] == (root / "models" / "pretrain" / "base.pt").stat().st_size
    assert 0.0 <= run.data.metrics["test/acc"] <= 1.0
    history = MlflowClient().get_metric_history(run.info.run_id, "val/acc")
    assert [m.step for m in history] == [1, 2, 3]  # one point per epoch
    client = MlflowClient()
    artifacts = {
        a.path for d in ("", "checkpoint", "plots", "params") for a in client.list_artifacts(run.info.run_id, d)
    }
    assert {"checkpoint/base.pt", "plots/confusion_matrix.png", "params/resolved_params.yaml"} <= artifacts


def test_returned_metrics_match_the_tracked_run(pretrained):
    _, runs, _ = pretrained
    run = MlflowClient().get_run(runs["base"]["run_id"])
    assert runs["base"]["test/acc"] == pytest.approx(run.data.metrics["test/acc"])
    assert runs["base"]["memory/estimated_train_bytes"] == run.data.metrics["memory/estimated_train_bytes"]


def test_plot_files_for_dvc(pretrained):
    _, _, root = pretrained
    history = (root / "plots" / "pretrain" / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train/loss,val/loss,val/acc" and len(history) == 4
    confusion = (root / "plots" / "pretrain" / "confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) > 100


def test_checkpoint_reloads_and_gives_the_same_predictions(pretrained):
    """The reloaded checkpoint predicts each test example as the model did when it was trained and tested.

    Catches: load_classifier zeroing the classifier head after loading.
    """
    params, runs, root = pretrained
    model, payload = load_classifier(root / "models" / "pretrain" / "base.pt", params.model)
    assert payload["classes"] == list(range(10)) and payload["input_shape"] == [1, 8, 8]
    task = load_task(StagePaths.of("pretrain", root).prepared("source"))
    model.eval()
    with torch.no_grad():
        predicted = task.classes[model(torch.as_tensor(task.X["test"])).argmax(dim=1).numpy()]
    # what the trained model predicted on the same test split, one row per example (written by the stage)
    confusion = np.loadtxt(root / "plots" / "pretrain" / "confusion.csv", delimiter=",", skiprows=1, dtype=int)
    assert np.array_equal(confusion[:, 0], task.classes[task.y["test"]])
    assert np.array_equal(predicted, confusion[:, 1])
    assert np.mean(predicted == confusion[:, 0]) == pytest.approx(runs["base"]["test/acc"])


def test_checkpoint_for_another_backbone_is_refused_naming_both(pretrained):
    _, _, root = pretrained
    other = make_params(model={"hidden_sizes": [64, 64]}).model
    with pytest.raises(ConfigError, match=r"built with model hidden_sizes=\[32\].*names model hidden_sizes=\[64, 64\]"):
        load_classifier(root / "models" / "pretrain" / "base.pt", other)
    with pytest.raises(DataError, match="checkpoint not found"):
        load_classifier(root / "models" / "absent.pt", other)


def test_same_seed_same_params_same_metrics(pretrained):
    params, first, root = pretrained
    second = run_pretrain(params, StagePaths.of("pretrain", root).writing_to(root / "again"))
    for key in ("test/acc", "test/f1_macro", "test/loss", "val/best_loss"):
        assert second["base"][key] == first["base"][key], key
    assert second["base"]["run_id"] != first["base"]["run_id"]


def test_cnn_backbone_trains_too(tracking_dir):
    """One epoch of a small CNN learns the ten digits far above chance (0.1): it reaches about 0.77 here.

    Catches: the CNN's body giving constant features (constant logits), so it cannot learn.
    """
    params = make_params(
        model={"backbone": "cnn", "channels": [16, 32]}, trainer={"max_epochs": 1, "batch_size": 16, "lr": 0.01}
    )
    write_prepared(prepare_data(params), StagePaths.of("prepare", tracking_dir).data)
    runs = run_pretrain(params, StagePaths.of("pretrain", tracking_dir))
    assert runs["base"]["params/total"] > 0
    assert runs["base"]["test/acc"] > 0.5


def test_a_stage_that_fails_midway_leaves_a_failed_run_and_no_checkpoint(tracking_dir):
    params = make_params(trainer={"max_epochs": 1})
    write_prepared(prepare_data(params), StagePaths.of("prepare", tracking_dir).data)
    (tracking_dir / "models").mkdir()
    (tracking_dir / "models" / "pretrain").write_text("a file where the checkpoint folder should be")
    with pytest.raises(OSError):
        run_pretrain(params, StagePaths.of("pretrain", tracking_dir))
    runs = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_runs(
        [mlflow.get_experiment_by_name(params.tracking.experiment).experiment_id]
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not (tracking_dir / "plots").exists()


def test_missing_prepared_data_says_what_to_run(tracking_dir):
    with pytest.raises(DataError, match="prepared data not found; run `dvc repro prepare` first"):
        run_pretrain(make_params(), StagePaths.of("pretrain", tracking_dir / "nowhere"))


def test_mixed_precision_keeps_an_fp32_model_state_as_estimated(tracking_dir):
    params = make_params(trainer={"max_epochs": 1, "precision": "16-mixed"})  # no fp16 AMP on CPU: Lightning uses bf16
    write_prepared(prepare_data(params), StagePaths.of("prepare", tracking_dir).data)
    metrics = run_pretrain(params, StagePaths.of("pretrain", tracking_dir))["base"]
    n = metrics["params/total"]
    assert metrics["memory/autocast_copies_bytes"] == 2 * n  # transient, reported apart from the state
    # weights, gradients and Adam's two moments stay fp32: the state after a step is what the estimate says
    assert metrics["memory/measured_state_bytes"] == pytest.approx(metrics["memory/estimated_train_bytes"], rel=0.001)
    run = MlflowClient().get_run(metrics["run_id"])
    assert run.data.tags["precision"] == ("16-mixed" if torch.cuda.is_available() else "bf16-mixed")


@pytest.mark.gpu
def test_on_a_gpu_peak_is_cuda_allocated_and_covers_model_state(tracking_dir):
    params = make_params(trainer={"max_epochs": 2, "accelerator": "gpu", "devices": 1})
    write_prepared(prepare_data(params), StagePaths.of("prepare", tracking_dir).data)
    metrics = run_pretrain(params, StagePaths.of("pretrain", tracking_dir))["base"]
    run = MlflowClient().get_run(metrics["run_id"])
    assert run.data.tags["device"].startswith("cuda")
    state = metrics["memory/weights_bytes"] + metrics["memory/grads_bytes"] + metrics["memory/optimizer_bytes"]
    assert metrics["memory/peak_bytes"] >= state
    # the model-state part: the estimator against the tensors on the GPU after an optimizer step, within 15%
    assert metrics["memory/measured_state_bytes"] == pytest.approx(metrics["memory/estimated_train_bytes"], rel=0.15)


def colour_folders(root, per_class: int = 60):
    """Four classes of 32x32 colour images, one sub-folder each: noisy red, green, blue and yellow."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]):
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            path = root / f"class{label}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


def resnet_params(root, **trainer):
    return make_params(
        data={"source": "image_folder", "path": str(root)},
        model={"backbone": "resnet", "channels": [8, 16], "blocks_per_stage": 1},
        trainer={"max_epochs": 8, "batch_size": 16, "lr": 0.01, **trainer},
        finetune={"strategies": ["partial", "lora"], "unfreeze_layers": 2},
    )


def test_resnet_on_an_image_folder_pretrains_and_adapts_its_convolutions(tracking_dir):
    """32x32 colour images read from class folders, the small ResNet, a LoRA fine-tune of its stages."""
    from pipeline.models.classifier import build_classifier
    from pipeline.paradigms.finetune.run import run_finetune

    params = resnet_params(colour_folders(tracking_dir / "images"))
    model = build_classifier(params.model, (3, 32, 32), 4)
    assert [name for name, _ in model.layers()] == [
        "body.stem",
        "body.stage1",
        "body.stage2",
        "head",
    ] and params.model.depth == 4
    assert model.body[:-1](torch.zeros(1, 3, 32, 32)).shape == (1, 16, 16, 16)  # the second stage halves the image

    write_prepared(prepare_data(params), StagePaths.of("prepare", tracking_dir).data)
    runs = run_pretrain(params, StagePaths.of("pretrain", tracking_dir))
    assert runs["base"]["test/acc"] > 0.5  # four colours: far above chance (0.25)
    tuned = run_finetune(params, StagePaths.of("finetune", tracking_dir))
    trained = MlflowClient().get_run(tuned["lora"]["run_id"]).data.tags["trained_modules"]
    assert "body.stage2.0.conv1.lora_A.default" in trained and "body.stage2.0.shortcut.0.lora_A.default" in trained
    assert tuned["partial"]["params/trainable"] < tuned["partial"]["params/total"]


@pytest.mark.gpu
def test_the_gpu_profile_path_resnet_in_bf16_trains_on_cuda_and_its_state_matches_the_estimate(tracking_dir):
    """What params-gpu.yaml asks for (ResNet, bf16-mixed, LoRA), small, with accelerator auto."""
    from pipeline.paradigms.finetune.run import run_finetune

    params = resnet_params(colour_folders(tracking_dir / "images"), precision="bf16-mixed")
    write_prepared(prepare_data(params), StagePaths.of("prepare", tracking_dir).data)
    runs = run_pretrain(params, StagePaths.of("pretrain", tracking_dir))
    runs |= run_finetune(params, StagePaths.of("finetune", tracking_dir))
    for variant, metrics in runs.items():
        run = MlflowClient().get_run(metrics["run_id"])
        assert run.data.tags["device"].startswith("cuda") and run.data.tags["precision"] == "bf16-mixed", variant
        assert metrics["memory/measured_state_bytes"] == pytest.approx(
            metrics["memory/estimated_train_bytes"], rel=0.15
        ), variant
