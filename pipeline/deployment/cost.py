"""The names of a run's deployment cost, and a model's cost relative to another's (a student's to its teacher's,
a compressed model's to the uncompressed one)."""

from __future__ import annotations

from pipeline.deployment.inference import LATENCY_P50, THROUGHPUT

SIZE_METRIC = "model/size_bytes"  # the saved model on disk, in the form it is saved (sparse, int8, fp16 ...)
NONZERO_METRIC = "model/nonzero_weights"
PARAMS_METRIC = "params/total"


def relative_cost(metrics: dict[str, float], reference: dict[str, float], prefix: str) -> dict[str, float]:
    """``<prefix>/size_ratio``, ``nonzero_ratio``, ``param_ratio``, ``latency_ratio`` (batch-1 median) and
    ``throughput_ratio`` of ``metrics`` over ``reference``'s, and ``<prefix>/acc_drop`` (reference's test accuracy
    minus this one's: positive when it lost accuracy)."""
    ratios = {
        "size_ratio": SIZE_METRIC,
        "nonzero_ratio": NONZERO_METRIC,
        "param_ratio": PARAMS_METRIC,
        "latency_ratio": LATENCY_P50,
        "throughput_ratio": THROUGHPUT,
    }
    found = {f"{prefix}/{name}": metrics[key] / reference[key] for name, key in ratios.items() if reference.get(key)}
    return found | {f"{prefix}/acc_drop": reference["test/acc"] - metrics["test/acc"]}
