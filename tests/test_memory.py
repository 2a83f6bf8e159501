"""The memory estimator's exact arithmetic, the measured model state it must match, and the peak on CPU."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from pipeline.memory import PeakMemory, estimate_training_memory, model_state_bytes
from pipeline.memory.activations import SavedTensorBytes


def tiny() -> nn.Linear:
    return nn.Linear(3, 2)  # 6 weights + 2 biases = 8 fp32 parameters = 32 bytes


@pytest.mark.parametrize(
    "make_optimizer, optimizer_bytes",
    [
        (lambda p: torch.optim.SGD(p, lr=0.1), 0),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 32),
        (lambda p: torch.optim.Adam(p), 64),
        (lambda p: torch.optim.AdamW(p), 64),
        (lambda p: torch.optim.Adam(p, amsgrad=True), 96),
    ],
)
def test_fp32_breakdown(make_optimizer, optimizer_bytes):
    model = tiny()
    est = estimate_training_memory(model, make_optimizer(model.parameters()), "32")
    assert (est.total_params, est.trainable_params) == (8, 8)
    assert (est.weights_bytes, est.autocast_copies_bytes, est.grads_bytes) == (32, 0, 32)
    assert est.optimizer_bytes == optimizer_bytes
    assert est.total_bytes == 64 + optimizer_bytes
    assert est.rule_12n_bytes == 96


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_keeps_fp32_state_and_reports_the_autocast_copies_apart(precision):
    model = tiny()
    est = estimate_training_memory(model, torch.optim.Adam(model.parameters()), precision)
    assert (est.weights_bytes, est.grads_bytes, est.optimizer_bytes, est.autocast_copies_bytes) == (32, 32, 64, 16)
    assert est.total_bytes == 128


def test_frozen_parameters_cost_weights_only():
    model = tiny()
    model.weight.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    est = estimate_training_memory(model, optimizer, "32")
    assert (est.total_params, est.trainable_params) == (8, 2)
    assert (est.weights_bytes, est.grads_bytes, est.optimizer_bytes) == (32, 8, 16)


def test_buffers_count_as_weights():
    model = nn.BatchNorm1d(4)  # 8 parameters; buffers: 4 + 4 floats and one int64 counter
    est = estimate_training_memory(model, torch.optim.SGD(model.parameters(), lr=0.1), "32")
    assert est.weights_bytes == 8 * 4 + 8 * 4 + 8


def test_contract_metric_names():
    model = tiny()
    metrics = estimate_training_memory(model, torch.optim.SGD(model.parameters(), lr=0.1), "32").as_metrics()
    for name in (
        "params/total",
        "params/trainable",
        "memory/estimated_train_bytes",
        "memory/weights_bytes",
        "memory/grads_bytes",
        "memory/optimizer_bytes",
        "memory/rule_12n_bytes",
    ):
        assert name in metrics


def test_unknown_optimizer_is_refused():
    model = tiny()
    with pytest.raises(ValueError, match="no memory rule for optimizer RMSprop"):
        estimate_training_memory(model, torch.optim.RMSprop(model.parameters()), "32")


def test_cpu_peak_sees_a_large_temporary_tensor():
    with PeakMemory(torch.device("cpu")) as peak:
        block = torch.ones(16 * 2**20 // 4)  # 16 MiB of float32, freed before the block ends
        block.sum()
        del block
    assert peak.peak_bytes >= 16 * 2**20


@pytest.mark.parametrize("set_to_none", [False, True])
def test_cpu_peak_of_a_small_network_covers_its_model_state_and_one_steps_activations_within_twice_them(set_to_none):
    """The live tensors of a training step: weights, gradients and Adam's moments (the model state), what autograd
    saves for backward (the activations), and temporaries (activation gradients, the optimizer's intermediates),
    which stay under one more state and activations. Gradients released before each forward (``set_to_none``, as
    Lightning does) are not alive with the activations: then the floor is the state without them. Steps past the
    counted ones add nothing to the figure."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters())
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    saved = SavedTensorBytes(model)

    def step(count: bool = False) -> None:
        optimizer.zero_grad(set_to_none=set_to_none)
        with saved.counting() if count else contextlib.nullcontext():
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    with PeakMemory(torch.device("cpu"), model) as peak:
        step(count=True)
        for _ in range(2):
            step()
        big = torch.ones(2**20)  # 4 MiB after the counted steps: the count has stopped (the bound below holds)
        del big
    state, activations = model_state_bytes(model, [optimizer]), saved.bytes
    grads = sum(p.grad.untyped_storage().nbytes() for p in model.parameters())
    assert activations > 0 and grads > 0
    floor = state + activations - (grads if set_to_none else 0)
    assert max(state, floor) <= peak.peak_bytes <= 2 * (state + activations)


def test_frozen_parameters_an_optimizer_holds_get_no_state():
    """PEFT's LoRA-FA optimizer is handed every parameter, frozen ones included; only trainable ones get state."""
    model = nn.Sequential(tiny(), nn.Linear(2, 2).requires_grad_(False))  # 8 trainable, 4 + 2 = 6 frozen parameters
    est = estimate_training_memory(model, torch.optim.Adam(model.parameters()), "32")
    assert (est.total_params, est.trainable_params) == (14, 8)
    assert est.optimizer_bytes == 2 * 32 and est.grads_bytes == 32


def one_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: torch.optim.Adam(p),
        lambda p: torch.optim.Adam(p, amsgrad=True),
    ],
)
def test_measured_state_after_a_step_matches_the_estimate(make_optimizer):
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    optimizer = make_optimizer(model.parameters())
    one_step(model, optimizer)
    estimate = estimate_training_memory(model, optimizer, "32").total_bytes
    # Adam's step counters: one fp32 scalar per tensor
    steps = sum(4 for state in optimizer.state.values() if "step" in state)
    assert model_state_bytes(model, [optimizer]) == estimate + steps


def test_measured_state_skips_frozen_gradients_and_counts_shared_storage_once():
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    model[1].weight = model[0].weight  # tied: one storage
    frozen = nn.Linear(3, 3, bias=False).requires_grad_(False)
    both = nn.Sequential(model, frozen)
    optimizer = torch.optim.SGD(both.parameters(), lr=0.1, momentum=0.9)
    one_step(both, optimizer)
    # tied weight, its gradient and momentum: 3 x 36 bytes; the frozen layer: its weight only
    assert model_state_bytes(both, [optimizer]) == 3 * 36 + 36


def test_every_field_and_metric_of_a_mixed_precision_estimate_with_frozen_parameters_and_buffers():
    """Linear(3, 2) trains (8 parameters), a BatchNorm1d(2) is frozen (4 parameters; buffers: 2 + 2 floats and an int64
    counter); Adam holds the trainable ones only, under 16-mixed: fp32 state plus 2-byte autocast copies of all 12."""
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2).requires_grad_(False))
    optimizer = torch.optim.Adam(model[0].parameters())
    est = estimate_training_memory(model, optimizer, "16-mixed")
    fields = {
        "total_params": 12,
        "trainable_params": 8,
        "weights_bytes": 12 * 4 + 4 * 4 + 8,  # 72
        "grads_bytes": 8 * 4,  # 32
        "optimizer_bytes": 2 * 8 * 4,  # 64
        "autocast_copies_bytes": 12 * 2,  # 24
        "total_bytes": 72 + 32 + 64,  # 168
        "rule_12n_bytes": 12 * 12,  # 144
    }
    assert est.as_dict() == fields
    assert est.as_metrics() == {
        "params/total": 12,
        "params/trainable": 8,
        "memory/estimated_train_bytes": 168,
        "memory/weights_bytes": 72,
        "memory/autocast_copies_bytes": 24,
        "memory/grads_bytes": 32,
        "memory/optimizer_bytes": 64,
        "memory/rule_12n_bytes": 144,
    }


def test_a_half_precision_model_counts_two_bytes_per_parameter_and_no_autocast_copies():
    model = tiny().to(torch.bfloat16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    est = estimate_training_memory(model, optimizer, "bf16-true")
    assert est.as_dict() == {
        "total_params": 8,
        "trainable_params": 8,
        "weights_bytes": 16,
        "grads_bytes": 16,
        "optimizer_bytes": 16,
        "autocast_copies_bytes": 0,
        "total_bytes": 48,
        "rule_12n_bytes": 96,
    }


def test_optimizer_states_per_parameter_for_each_known_optimizer():
    from pipeline.memory.estimate import optimizer_states_per_param

    class LoraFAOptimizer(torch.optim.Optimizer):  # PEFT's, by name: importing peft is slow
        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

    params = list(tiny().parameters())
    kinds = {
        "sgd": (torch.optim.SGD(params, lr=0.1), 0),
        "sgd momentum": (torch.optim.SGD(params, lr=0.1, momentum=0.5), 1),
        "adam": (torch.optim.Adam(params), 2),
        "adamw": (torch.optim.AdamW(params), 2),
        "adam amsgrad": (torch.optim.Adam(params, amsgrad=True), 3),
        "adamw amsgrad": (torch.optim.AdamW(params, amsgrad=True), 3),
        "lora-fa": (LoraFAOptimizer(params), 2),
    }
    assert {name: optimizer_states_per_param(opt) for name, (opt, _) in kinds.items()} == {
        name: states for name, (_, states) in kinds.items()
    }
    with pytest.raises(ValueError, match="no memory rule for optimizer Adagrad"):
        optimizer_states_per_param(torch.optim.Adagrad(params))


def test_lora_fa_optimizer_state_covers_only_the_trainable_parameters_it_holds():
    class LoraFAOptimizer(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

    model = nn.Sequential(tiny(), nn.Linear(2, 2).requires_grad_(False))
    est = estimate_training_memory(model, LoraFAOptimizer(model.parameters()), "32")
    assert (est.weights_bytes, est.grads_bytes, est.optimizer_bytes, est.total_bytes) == (56, 32, 64, 152)
