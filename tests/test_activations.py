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


def small_net() -> nn.Sequential:
    """The hand-counted network above: 224 bytes saved on a batch of 5."""
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_metric_names_are_the_tracking_contracts_strings():
    from pipeline.memory.activations import ESTIMATED, MEASURED

    assert (ESTIMATED, MEASURED) == ("memory/activation_bytes_estimated", "memory/activation_bytes_measured")


def test_first_batch_is_the_first_batch_size_examples_of_every_tensor():
    from pipeline.memory.activations import first_batch

    X, y = torch.arange(20.0).reshape(10, 2), torch.arange(10)
    first = first_batch(TensorDataset(X, y), 4)
    assert type(first) is tuple and len(first) == 2
    assert torch.equal(first[0], X[:4]) and torch.equal(first[1], torch.arange(4))
    whole = first_batch(TensorDataset(X, y), 32)  # fewer examples than a batch: all of them
    assert torch.equal(whole[0], X) and torch.equal(whole[1], y)


def test_prediction_defaults_to_the_modules_own_loss_and_counts_under_no_grad():
    class WithLoss(nn.Sequential):
        def loss(self, batch):
            return classification_loss(self(batch[0]), batch[1])

    net = WithLoss(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    batch = (torch.rand(5, 4), torch.tensor([0, 1, 0, 1, 1]))
    assert predict_activation_bytes(net, batch) == 224
    with torch.no_grad():  # the prediction turns gradients back on: otherwise autograd would save nothing
        assert predict_activation_bytes(net, batch) == 224


def test_prediction_leaves_the_module_it_was_given_untouched():
    """It runs on a deep copy moved to the meta device: the caller's weights stay where and what they were."""
    net = small_net().eval()
    before = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    assert predict_activation_bytes(net, (torch.rand(5, 4), torch.tensor([0, 1, 0, 1, 1])), loss) == 224
    after = net.state_dict()
    assert all(after[name].device.type == "cpu" and torch.equal(after[name], t) for name, t in before.items())
    assert not any(module.training for module in net.modules())


def test_the_counter_leaves_out_the_modules_parameters_and_counts_a_shared_storage_once():
    net = nn.Linear(4, 3, bias=False)
    x = torch.rand(5, 4)
    meter = SavedTensorBytes(net)
    with meter.counting() as counting:
        y = net(x)  # saves the input (80 bytes) and the weight (model state: left out)
        (y * y).sum()  # saves y twice: one storage of 60 bytes
    assert counting is meter
    assert meter.bytes == 5 * 4 * 4 + 5 * 3 * 4 == 140
    assert sorted(meter.seen.values()) == [60, 80]
