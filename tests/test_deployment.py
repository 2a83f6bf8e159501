"""The inference-cost helper every run is timed with, and the weight counts it reports beside it."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.config.schema import DeploymentConfig
from pipeline.deployment.cost import relative_cost
from pipeline.deployment.inference import LATENCY_P50, LATENCY_P95, THROUGHPUT, measure_inference
from pipeline.deployment.weights import count_nonzero_weights, count_weights


def net() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)
    )


def test_latency_and_throughput_are_sane_and_the_mode_is_restored():
    model = net().train()
    examples = np.random.default_rng(0).random((10, 4, 4), dtype=np.float32)
    cost = measure_inference(
        model, examples, torch.device("cpu"), DeploymentConfig(timed_calls=30, throughput_batch=100)
    )
    assert 0 < cost.latency_ms_p50 <= cost.latency_ms_p95 < 1000
    assert cost.samples_per_s > 0
    assert model.training  # put back as it was
    assert set(cost.as_metrics()) == {LATENCY_P50, LATENCY_P95, THROUGHPUT}


def test_latency_times_batch_one_calls_and_throughput_counts_the_samples_of_throughput_batch_calls():
    """Each forward pass is clocked from inside (hooks) on the clock measure_inference reads: a timed call's reading
    covers its forward pass and lies within the gap between its neighbours', so the reported figures lie between
    bounds that hold however loaded the machine is. (Whether batching is faster is the hardware's: the benchmark
    ``benchmarks.distill_compress_seeds`` reports it.)

    Catches: throughput counted in calls, not samples, per second (or timed at batch 1)."""
    model = net()
    examples = np.random.default_rng(0).random((50, 16), dtype=np.float32)
    cfg = DeploymentConfig(warmup_calls=2, timed_calls=5, throughput_batch=1000, throughput_calls=3)
    calls: list[list] = []  # per forward pass: its batch, when it started, when it ended
    model.register_forward_pre_hook(lambda _, args: calls.append([args[0].shape[0], time.perf_counter()]))
    model.register_forward_hook(lambda *_: calls[-1].append(time.perf_counter()))
    cost = measure_inference(model, examples, torch.device("cpu"), cfg)
    ended = time.perf_counter()
    assert [batch for batch, *_ in calls] == [1] * (2 + 5) + [1000] * (1 + 3)  # warm-up, timed; untimed, timed

    inside = sorted(1000 * (calls[i][2] - calls[i][1]) for i in range(2, 7))  # ms, what each reading covers
    between = sorted(1000 * (calls[i + 1][1] - calls[i - 1][2]) for i in range(2, 7))  # ms, what it can't exceed
    p95 = min(4, int(np.ceil(0.95 * 5)) - 1)
    assert inside[2] * (1 - 1e-9) <= cost.latency_ms_p50 <= between[2] * (1 + 1e-9)
    assert inside[p95] * (1 - 1e-9) <= cost.latency_ms_p95 <= between[p95] * (1 + 1e-9)
    forward = sum(end - start for _, start, end in calls[8:])  # the timed calls' forward passes, seconds
    span = ended - calls[7][2]  # from the untimed call's end to the return: holds every timed call
    assert 3 * 1000 / span * (1 - 1e-9) <= cost.samples_per_s <= 3 * 1000 / forward * (1 + 1e-9)


def test_nonzero_weights_count_zeros_set_by_hand():
    model = net()
    with torch.no_grad():
        model[1].weight[:4] = 0
    assert count_weights(model) == sum(p.numel() for p in model.parameters())
    assert count_nonzero_weights(model) == count_weights(model) - 4 * 16 - _zeros(model[2].bias)


def _zeros(tensor: torch.Tensor) -> int:
    return int((tensor == 0).sum())


def test_relative_cost_divides_by_the_reference_and_subtracts_accuracy():
    reference = {"test/acc": 0.9, "model/size_bytes": 200, LATENCY_P50: 2.0, "params/total": 10}
    found = relative_cost(
        {"test/acc": 0.85, "model/size_bytes": 50, LATENCY_P50: 1.0, "params/total": 5}, reference, "x"
    )
    assert found == pytest.approx(
        {"x/size_ratio": 0.25, "x/latency_ratio": 0.5, "x/param_ratio": 0.5, "x/acc_drop": 0.05}
    )
