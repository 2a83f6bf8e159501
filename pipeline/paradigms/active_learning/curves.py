"""Summaries of a learning curve (test accuracy against labels used)."""

from __future__ import annotations

from typing import Optional, Sequence


def area_under_curve(labels: Sequence[float], acc: Sequence[float]) -> float:
    """Area under accuracy vs labels (trapezoids) over the labels spanned: the curve's mean accuracy, in [0, 1]."""
    if len(labels) == 1:
        return float(acc[0])
    area = sum((x1 - x0) * (a0 + a1) / 2 for x0, x1, a0, a1 in zip(labels, labels[1:], acc, acc[1:]))
    return float(area / (labels[-1] - labels[0]))


def labels_to_reach(labels: Sequence[float], acc: Sequence[float], target: float) -> Optional[int]:
    """The fewest labels at which the curve reaches ``target``; None if it never does."""
    for x, a in zip(labels, acc):
        if a >= target:
            return int(x)
    return None
