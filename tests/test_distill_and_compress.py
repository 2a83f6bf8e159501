"""Distillation and compression on tiny models and a real MLflow store: the loss as the paper writes it, pruning
that reaches its sparsity and survives a save, int8 and fp16 copies that answer as the float model does, and the
two stages' runs with what they log against their teacher and reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.data.prepared import load_task
from pipeline.deployment.weights import count_nonzero_weights, count_weights
from pipeline.errors import ConfigError
from pipeline.models.checkpoint import load_classifier, save_classifier
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.compress.precision import HalfPrecision, dequantized, load_int8, quantize_int8, save_int8
from pipeline.paradigms.compress.pruning import permanent, prunable, prune_globally, sparsity
from pipeline.paradigms.compress.run import run_compress
from pipeline.paradigms.distill.loss import UNLABELLED, distillation_loss
from pipeline.paradigms.distill.run import labelled_share, run_distill
from pipeline.params import parse_params
from pipeline.paths import StagePaths
from pipeline.seeding import seed_everything
from tests.conftest import deep_merge, make_params, stage_paths

STUDENT = {"distill": {"student": {"hidden_sizes": [8]}}, "compress": {"sparsities": [0.5, 0.9]}}


def test_distillation_loss_equals_the_formula_worked_by_hand():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    T, alpha = 2.0, 0.25

    def softmax(row):
        e = [math.exp(v / T) for v in row]
        return [v / sum(e) for v in e]

    kl = 0.0
    for s, t in zip(student.tolist(), teacher.tolist()):
        p, q = softmax(t), softmax(s)
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    kl /= 2  # batch mean
    ce = (-math.log(math.exp(1) / (math.exp(1) + 1)) - math.log(math.exp(2) / (1 + math.exp(2)))) / 2
    expected = alpha * T**2 * kl + (1 - alpha) * ce
    assert float(distillation_loss(student, teacher, labels, T, alpha)) == pytest.approx(expected, rel=1e-6)


def test_unlabelled_examples_count_in_the_soft_term_only():
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([2, UNLABELLED, 0, UNLABELLED])
    soft_only = distillation_loss(student, teacher, labels, 3.0, 1.0)
    assert soft_only == pytest.approx(distillation_loss(student, teacher, torch.tensor([0, 1, 2, 0]), 3.0, 1.0))
    hard_only = distillation_loss(student, teacher, labels, 3.0, 0.0)
    known = labels != UNLABELLED
    assert hard_only == pytest.approx(float(nn.functional.cross_entropy(student[known], labels[known])))
    nothing_known = torch.full((4,), UNLABELLED)
    assert float(distillation_loss(student, teacher, nothing_known, 3.0, 0.0)) == 0.0
    assert float(distillation_loss(teacher, teacher, nothing_known, 3.0, 1.0)) == pytest.approx(0.0, abs=1e-6)


def test_labelled_share_keeps_each_class_and_the_asked_fraction():
    y = np.repeat(np.arange(5), 20)
    known = labelled_share(y, 0.1, seed=3)
    assert known.sum() == 10 and all(known[y == label].sum() == 2 for label in range(5))
    assert np.array_equal(known, labelled_share(y, 0.1, seed=3)) and labelled_share(y, 1.0, seed=3).all()
    assert labelled_share(y, 0.001, seed=3).sum() == 5  # at least one per class


@pytest.mark.parametrize(
    ("update", "shown"),
    [
        ({"distill": {"temperature": 0}}, "distill.temperature = 0: must be greater than 0"),
        ({"distill": {"alpha": 1.5}}, "distill.alpha = 1.5: must be less than or equal to 1"),
        ({"distill": {"labelled_fraction": 0}}, "distill.labelled_fraction = 0: must be greater than 0"),
        ({"compress": {"sparsities": [0.5, 1.0]}}, "compress.sparsities[1] = 1.0: must be less than 1"),
        ({"compress": {"sparsities": [-0.1]}}, "compress.sparsities[0] = -0.1: must be greater than or equal to 0"),
        ({"model": {"backbone": "cnn"}, "compress": {"int8": True}}, "compress.int8 = true: dynamic int8"),
    ],
)
def test_bad_distill_and_compress_params_name_the_key(update, shown):
    with pytest.raises(ConfigError) as info:
        parse_params(update)
    assert shown in str(info.value) and "\n" not in str(info.value)


def trained_like(seed: int = 0) -> nn.Module:
    """A small mlp classifier with non-trivial weights (no fit needed for the mechanics below)."""
    seed_everything(seed)
    model = build_classifier(make_params().model.model_copy(update={"hidden_sizes": [256, 128]}), (8, 8), 10)
    model.eval()
    return model


@pytest.mark.parametrize("share", [0.5, 0.7, 0.9])
def test_pruning_reaches_the_asked_sparsity_and_survives_a_packed_save(tmp_path, share):
    model = trained_like()
    pruned = permanent(prune_globally(model, share))
    assert sparsity(pruned) == pytest.approx(share, abs=1e-3)
    assert not any(name.endswith("_mask") for name, _ in pruned.named_buffers())  # plain weights again
    cfg = make_params().model.model_copy(update={"hidden_sizes": [256, 128]})
    save_classifier(tmp_path / "dense.pt", pruned, cfg, (8, 8), list(range(10)))
    save_classifier(tmp_path / "packed.pt", pruned, cfg, (8, 8), list(range(10)), sparse=True)
    loaded, _ = load_classifier(tmp_path / "packed.pt", cfg)
    for name, tensor in pruned.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    dense, packed = (tmp_path / "dense.pt").stat().st_size, (tmp_path / "packed.pt").stat().st_size
    assert packed < dense * (1 - share + 0.15)  # the zeros are gone from the file, not just set
    pruned_away = round(share * sum(module.weight.numel() for module, _ in prunable(loaded)))
    assert count_nonzero_weights(loaded) <= count_weights(loaded) - pruned_away  # (and any zero a bias holds)


def test_int8_answers_as_the_float_model_and_saves_as_int8(tmp_path):
    model = trained_like()
    x = torch.rand(256, 8, 8)
    quantized = quantize_int8(model)
    with torch.no_grad():
        reference, answers = model(x), quantized(x)
    assert (reference.argmax(1) == answers.argmax(1)).float().mean() >= 0.95
    assert torch.allclose(reference, answers, atol=0.05 * float(reference.abs().max()))
    assert count_weights(quantized) == count_weights(model)
    cfg = make_params().model.model_copy(update={"hidden_sizes": [256, 128]})
    save_int8(tmp_path / "int8.pt", quantized, cfg, (8, 8), list(range(10)))
    save_classifier(tmp_path / "fp32.pt", model, cfg, (8, 8), list(range(10)))
    assert (tmp_path / "int8.pt").stat().st_size < 0.4 * (tmp_path / "fp32.pt").stat().st_size
    with torch.no_grad():
        assert torch.equal(load_int8(tmp_path / "int8.pt", cfg)(x), answers)
        assert torch.allclose(dequantized(quantized, model)(x), answers, atol=0.05 * float(answers.abs().max()))


def test_half_precision_takes_and_returns_float32_close_to_the_float_model():
    model = trained_like()
    x = torch.rand(64, 8, 8)
    with torch.no_grad():
        half = HalfPrecision(model)(x)
        assert half.dtype == torch.float32
        assert torch.allclose(half, model(x), atol=1e-2 * float(model(x).abs().max()))
    assert all(p.dtype == torch.float16 for p in HalfPrecision(model).parameters())


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """Prepared data, then the distill stage where dvc.yaml puts its models (compress reads the teacher there)."""
    root = tmp_path_factory.mktemp("distill")
    params = make_params(**STUDENT)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        write_prepared(prepare_data(params), StagePaths.of("prepare", root).data)
        runs = run_distill(params, stage_paths("distill", root))
        yield params, root, runs


def test_distill_trains_a_teacher_a_control_and_a_distilled_student(distilled):
    params, root, runs = distilled
    assert list(runs) == ["teacher", "student", "distilled"]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for variant, entry in runs.items():
        tags = client.get_run(entry["run_id"]).data.tags
        assert (tags["paradigm"], tags["variant"]) == ("distill", variant)
    teacher, _ = load_classifier(stage_paths("distill", root).teacher, params.model, "distill")
    assert count_weights(teacher) == runs["teacher"]["params/total"]
    for student in ("student", "distilled"):
        entry = runs[student]
        assert entry["params/total"] < runs["teacher"]["params/total"]
        assert entry["distill/param_ratio"] == pytest.approx(entry["params/total"] / runs["teacher"]["params/total"])
        assert entry["distill/size_ratio"] < 0.5 and 0 < entry["distill/agreement"] <= 1
        assert entry["distill/acc_drop"] == pytest.approx(runs["teacher"]["test/acc"] - entry["test/acc"])
    assert runs["distilled"]["val/distilled_best_loss"] == runs["distilled"]["val/best_loss"]
    assert runs["student"]["data/labels_used"] == runs["distilled"]["data/labels_used"]


def test_distilled_student_with_few_labels_counts_only_those_it_saw(distilled, tmp_path, monkeypatch):
    params, root, _ = distilled
    monkeypatch.chdir(root)
    few = make_params(**deep_merge(STUDENT, {"distill": {"labelled_fraction": 0.1}}))
    runs = run_distill(few, stage_paths("distill", root, str(tmp_path / "few")))
    task = load_task(stage_paths("distill", root).prepared("full"))
    seen = int(labelled_share(task.y["train"], 0.1, few.seed).sum()) + len(task.y["val"])
    assert runs["student"]["data/labels_used"] == runs["distilled"]["data/labels_used"] == seen
    assert runs["teacher"]["data/labels_used"] == len(task.y["train"]) + len(task.y["val"])


def test_a_student_larger_than_its_teacher_is_warned_about(distilled, tmp_path, monkeypatch, capsys):
    _, root, _ = distilled
    monkeypatch.chdir(root)
    larger = make_params(distill={"student": {"hidden_sizes": [64, 64]}}, trainer={"max_epochs": 1})
    run_distill(larger, stage_paths("distill", root, str(tmp_path / "larger")))
    assert "warning: distill.student [64, 64] has" in capsys.readouterr().err


def test_compress_runs_each_variant_against_the_reference(distilled, monkeypatch):
    params, root, _ = distilled
    monkeypatch.chdir(root)
    runs = run_compress(params, stage_paths("compress", root, "compressed"))
    assert list(runs) == ["reference", "prune-0.5", "prune-0.9", "int8", "fp16"]
    reference = runs["reference"]
    for variant, entry in runs.items():
        if variant != "reference":
            assert entry["compress/acc_drop"] == pytest.approx(reference["test/acc"] - entry["test/acc"]), variant
            assert entry["compress/size_ratio"] < 0.75, variant
    assert runs["prune-0.9"]["compress/sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert runs["prune-0.9"]["model/size_bytes"] < runs["prune-0.5"]["model/size_bytes"]
    assert runs["prune-0.9"]["model/nonzero_weights"] < 0.2 * reference["model/nonzero_weights"]
    assert runs["int8"]["compress/acc_drop"] <= 0.05 and runs["fp16"]["compress/acc_drop"] <= 0.02
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    int8 = client.get_run(runs["int8"]["run_id"]).data
    assert (int8.tags["device"], int8.tags["precision"], int8.tags["optimizer"]) == ("cpu", "int8", "none")
    assert int8.metrics["params/trainable"] == 0 and "memory/estimated_train_bytes" not in int8.metrics
    saved = root / "compressed" / "models"
    assert sorted(p.name for p in saved.iterdir()) == sorted(f"{v}.pt" for v in runs)
    pruned, _ = load_classifier(saved / "prune-0.9.pt", params.model, "compress")
    assert sparsity(pruned) == pytest.approx(0.9, abs=1e-3)


def test_int8_runs_by_default_only_where_the_backbone_has_linear_layers():
    assert make_params().compress.int8_for("mlp")
    cnn = make_params(model={"backbone": "cnn"})  # no error: int8 is simply left out
    assert not cnn.compress.int8_for("cnn")
    assert not make_params(compress={"int8": False}).compress.int8_for("mlp")
