"""Inference cost of a trained network, timed one way for every run.

The network runs in eval mode under ``torch.inference_mode`` on the device it trained on (an int8 model on
the CPU, where its kernels are). Latency: ``warmup_calls`` untimed calls at batch 1, then ``timed_calls``
timed ones, reported as their median and 95th percentile; throughput: samples per second at
``throughput_batch`` examples per call, over ``throughput_calls`` calls after one untimed call. On a GPU each
reading waits for the device's queued work. Nothing is pinned: the threads are the stage's own
(``trainer.num_threads``), so the figures are those of the process that serves the model as configured.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.config.schema import DeploymentConfig

LATENCY_P50 = "deploy/latency_ms_p50"
LATENCY_P95 = "deploy/latency_ms_p95"
THROUGHPUT = "deploy/throughput_samples_per_s"


@dataclass(frozen=True)
class InferenceCost:
    latency_ms_p50: float
    latency_ms_p95: float
    samples_per_s: float

    def as_metrics(self) -> dict[str, float]:
        return {LATENCY_P50: self.latency_ms_p50, LATENCY_P95: self.latency_ms_p95, THROUGHPUT: self.samples_per_s}


def measure_inference(
    network: nn.Module, examples: np.ndarray, device: torch.device, cfg: DeploymentConfig
) -> InferenceCost:
    """Time ``network`` on ``examples`` (its test inputs; repeated to fill the throughput batch) on ``device``."""
    device = torch.device(device)
    was_training = network.training
    network.eval()
    try:
        one = torch.from_numpy(examples[:1]).to(device)
        reps = -(-cfg.throughput_batch // len(examples))  # ceil: enough copies to fill the batch
        many = torch.from_numpy(np.concatenate([examples] * reps)[: cfg.throughput_batch]).to(device)
        with torch.inference_mode():
            for _ in range(cfg.warmup_calls):
                network(one)
            latencies = [_timed(network, one, device) for _ in range(cfg.timed_calls)]
            network(many)
            seconds = sum(_timed(network, many, device) for _ in range(cfg.throughput_calls))
    finally:
        network.train(was_training)
    ms = sorted(1000 * s for s in latencies)
    p95 = ms[min(len(ms) - 1, int(np.ceil(0.95 * len(ms))) - 1)]
    return InferenceCost(statistics.median(ms), p95, cfg.throughput_calls * len(many) / seconds)


def _timed(network: nn.Module, x: torch.Tensor, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    network(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
