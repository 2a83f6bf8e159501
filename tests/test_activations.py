"""Activation memory: what autograd keeps for backward, counted by hand, predicted on the meta device and measured
in a real step; and what gradient accumulation changes (nothing, without batch norm)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.config.schema import ModelConfig, TrainerConfig
from pipeline.memory.activations import SavedTensorBytes, predict_activation_bytes
from pipeline.models.classifier import build_classifier
from pipeline.training.lightning_module import ClassificationModule, classification_loss


def loss(module: nn.Module, batch: tuple) -> torch.Tensor:
    return classification_loss(module(batch[0]), batch[1])


def measured(module: nn.Module, batch: tuple) -> int:
    meter = SavedTensorBytes(module)
    with meter.counting():
        loss(module, batch)
    return meter.bytes


def test_saved_bytes_of_a_small_network_equal_a_hand_count():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    batch = (torch.rand(5, 4), torch.tensor([0, 1, 0, 1, 1]))
    by_hand = (
        5 * 4 * 4  # the input, kept by the first linear layer for its weights' gradient
        + 5 * 3 * 4  # the ReLU's output: kept by the ReLU and by the second linear layer, one storage
        + 5 * 2 * 4  # log-softmax's output, kept by the loss
        + 5 * 8  # the int64 targets
        + 4  # the loss's total weight (a float scalar)
    )  # the weights autograd keeps are model state: not counted
    assert measured(net, batch) == by_hand == 224
    assert predict_activation_bytes(net, batch, loss) == by_hand


@pytest.mark.parametrize("backbone", ["mlp", "cnn", "cnn1d"])
def test_prediction_from_shapes_equals_a_real_step_on_every_backbone(backbone):
    shape = (16,) if backbone == "cnn1d" else (8, 8)
    model = build_classifier(ModelConfig(backbone=backbone, hidden_sizes=[32, 16], channels=[4, 8]), shape, 10)
    batch = (torch.rand(32, *shape), torch.randint(0, 10, (32,)))
    model.train()
    assert predict_activation_bytes(model, batch, loss) == measured(model, batch) > 32 * 4 * 8


def test_a_frozen_body_keeps_only_what_the_head_needs():
    model = build_classifier(ModelConfig(hidden_sizes=[64, 64], dropout=0.0), (8, 8), 10)
    batch = (torch.rand(32, 8, 8), torch.randint(0, 10, (32,)))
    whole = measured(model, batch)
    for param in model.body.parameters():
        param.requires_grad_(False)
    frozen = measured(model, batch)
    assert frozen == predict_activation_bytes(model, batch, loss) < whole / 4


def fit_one_step(batch_size: int, accumulate: int, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(hidden_sizes=[16], batch_norm=False, dropout=0.0), (8,), 3)
    cfg = TrainerConfig(optimizer="sgd", momentum=0, lr=0.5, batch_size=batch_size, accumulate_grad_batches=accumulate)
    module = ClassificationModule(model, 3, cfg)
    trainer = pl.Trainer(
        max_steps=1, accumulate_grad_batches=accumulate, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=False))
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_accumulated_micro_batches_step_as_the_large_batch_without_batch_norm():
    X, y = torch.rand(64, 8), torch.randint(0, 3, (64,))
    large = fit_one_step(64, 1, X, y)
    for batch_size, accumulate in ((16, 4), (8, 8)):
        stepped = fit_one_step(batch_size, accumulate, X, y)
        for name, weights in large.items():
            assert torch.allclose(stepped[name], weights, atol=1e-6), (batch_size, accumulate, name)
    assert not torch.equal(large["head.weight"], fit_one_step(64, 1, X[:32], y[:32])["head.weight"])  # it stepped
