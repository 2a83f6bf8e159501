"""The inference-cost helper every run is timed with, and the weight counts it reports beside it."""

from __future__ import annotations

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


def test_a_larger_batch_answers_more_samples_per_second_than_batch_one():
    model = net()
    examples = np.random.default_rng(0).random((50, 16), dtype=np.float32)
    cost = measure_inference(model, examples, torch.device("cpu"), DeploymentConfig(throughput_batch=1000))
    assert cost.samples_per_s > 1000 / cost.latency_ms_p50  # batching beats one example per call


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
